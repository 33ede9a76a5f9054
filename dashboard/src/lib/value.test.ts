import { describe, expect, it } from 'vitest';
import { decodeText, hexDump, imageType, viewValue } from './value';

const enc = (s: string) => new TextEncoder().encode(s);

describe('viewValue', () => {
  it('pretty-prints JSON by content type', () => {
    const v = viewValue('application/json', enc('{"id":1,"tags":["a"]}'));
    expect(v.kind).toBe('json');
    expect(v.text).toBe('{\n  "id": 1,\n  "tags": [\n    "a"\n  ]\n}');
  });
  it('recognises JSON stored without a JSON content type', () => {
    expect(viewValue('application/octet-stream', enc(' [1,2]')).kind).toBe('json');
  });
  it('shows invalid JSON as text', () => {
    const v = viewValue('application/json', enc('{not json'));
    expect(v.kind).toBe('text');
    expect(v.text).toBe('{not json');
  });
  it('shows UTF-8 as text', () => {
    const v = viewValue('text/plain; charset=utf-8', enc('héllo\nwörld\t!'));
    expect(v).toEqual({ kind: 'text', text: 'héllo\nwörld\t!', truncated: false });
  });
  it('previews images by content type or magic number', () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
    expect(viewValue('image/png', png).kind).toBe('image');
    expect(viewValue('application/octet-stream', png).kind).toBe('image');
    expect(imageType(null, new Uint8Array([0xff, 0xd8, 0xff, 0xe0]))).toBe('image/jpeg');
    expect(imageType('image/svg+xml', enc('<svg/>'))).toBe('image/svg+xml');
    // an image type declared as text is not sniffed
    expect(imageType('text/plain', png)).toBeNull();
  });
  it('dumps binary as hex', () => {
    const b = new Uint8Array([0, 1, 2, 0xff, 0x41, 0x42]);
    const v = viewValue('application/octet-stream', b);
    expect(v.kind).toBe('hex');
    expect(v.text).toBe('00000000  ' + '00 01 02 ff 41 42 '.padEnd(49) + ' |....AB|');
  });
  it('treats control characters and bad UTF-8 as binary', () => {
    expect(decodeText(new Uint8Array([0x68, 0x00, 0x69]))).toBeNull();
    expect(decodeText(new Uint8Array([0xc3, 0x28]))).toBeNull();
    expect(viewValue(null, new Uint8Array([0xc3, 0x28])).kind).toBe('hex');
  });
  it('says an empty value is empty', () => {
    expect(viewValue('text/plain', new Uint8Array()).kind).toBe('empty');
  });
  it('cuts long hex dumps', () => {
    const b = new Uint8Array(70000).fill(0xfe);
    const v = viewValue(null, b);
    expect(v.truncated).toBe(true);
    expect(v.text.split('\n')).toHaveLength(4096);
    expect(hexDump(new Uint8Array(17)).split('\n')).toHaveLength(2);
  });
});
