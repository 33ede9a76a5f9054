// How a value is shown: JSON pretty-printed, text, an image, or a hex dump.

export type ValueKind = 'json' | 'text' | 'image' | 'hex' | 'empty';

export interface ValueView {
  kind: ValueKind;
  /** The text to show (json, text, hex); '' for image and empty. */
  text: string;
  /** The hex dump or text was cut at this many bytes. */
  truncated: boolean;
}

const IMAGE_TYPES = /^image\/(png|jpe?g|gif|webp|avif|bmp|x-icon|vnd\.microsoft\.icon|svg\+xml)\b/i;
export const HEX_LIMIT = 64 * 1024;
export const TEXT_LIMIT = 1024 * 1024;

function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Magic numbers, for images stored as application/octet-stream. */
export function sniffImage(b: Uint8Array): string | null {
  const starts = (...sig: number[]) => sig.every((v, i) => b[i] === v);
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'image/png';
  if (starts(0xff, 0xd8, 0xff)) return 'image/jpeg';
  if (starts(0x47, 0x49, 0x46, 0x38)) return 'image/gif';
  if (starts(0x52, 0x49, 0x46, 0x46) && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50)
    return 'image/webp';
  return null;
}

/** Valid UTF-8 without control characters other than tab, newline, carriage return. */
export function decodeText(b: Uint8Array): string | null {
  let s: string;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return null;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(s)) return null;
  return s;
}

export function hexDump(b: Uint8Array, limit = HEX_LIMIT): string {
  const n = Math.min(b.length, limit);
  const lines: string[] = [];
  for (let off = 0; off < n; off += 16) {
    const row = b.subarray(off, Math.min(off + 16, n));
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        const v = row[i] as number;
        hex += v.toString(16).padStart(2, '0') + ' ';
        ascii += v >= 0x20 && v < 0x7f ? String.fromCharCode(v) : '.';
      } else {
        hex += '   ';
      }
      if (i === 7) hex += ' ';
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  return lines.join('\n');
}

/** The image type to preview, or null. */
export function imageType(contentType: string | null, b: Uint8Array): string | null {
  const mt = mediaType(contentType);
  if (IMAGE_TYPES.test(mt)) return mt;
  if (mt === '' || mt === 'application/octet-stream') return sniffImage(b);
  return null;
}

export function viewValue(contentType: string | null, b: Uint8Array): ValueView {
  if (b.length === 0) return { kind: 'empty', text: '', truncated: false };
  if (imageType(contentType, b)) return { kind: 'image', text: '', truncated: false };
  const mt = mediaType(contentType);
  const text = b.length <= TEXT_LIMIT ? decodeText(b) : null;
  if (text !== null) {
    const looksJson = mt === 'application/json' || mt.endsWith('+json') || /^\s*[[{]/.test(text);
    if (looksJson) {
      try {
        return { kind: 'json', text: JSON.stringify(JSON.parse(text), null, 2), truncated: false };
      } catch {
        /* not JSON after all: show it as text */
      }
    }
    return { kind: 'text', text, truncated: false };
  }
  return { kind: 'hex', text: hexDump(b), truncated: b.length > HEX_LIMIT };
}
