// A parser of the text/event-stream format (WHATWG HTML, "Server-sent events"),
// fed with decoded text in chunks of any size. EventSource cannot send an
// Authorization header, so the dashboard reads /api/events with fetch and this.

export interface SSEMessage {
  /** The event type; "message" when the block named none. */
  event: string;
  /** The data lines joined with "\n". */
  data: string;
  /** The last event id in force when this event was dispatched ("" for none). */
  id: string;
}

export class SSEParser {
  private buf = '';
  private data: string[] = [];
  private hasData = false;
  private eventType = '';
  private pendingCR = false;
  private sawFirst = false;
  /** Last event id (kept across events, as the spec says). */
  lastEventId = '';
  /** Reconnection time the stream asked for, in ms (null until it did). */
  retry: number | null = null;

  /** Feed decoded text; returns the events completed by it. */
  feed(chunk: string): SSEMessage[] {
    const out: SSEMessage[] = [];
    let text = chunk;
    if (!this.sawFirst && text.length > 0) {
      this.sawFirst = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // A "\r\n" split between two chunks: the "\r" ended the line already.
    if (this.pendingCR) {
      this.pendingCR = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    this.buf += text;
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buf.slice(start, i);
      if (c === 13) {
        if (i + 1 < this.buf.length) {
          if (this.buf.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  private line(line: string): SSEMessage | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null; // a comment (keep-alive)
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data.push(value);
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): SSEMessage | null {
    const hadData = this.hasData;
    const data = this.data.join('\n');
    const event = this.eventType || 'message';
    this.data = [];
    this.hasData = false;
    this.eventType = '';
    if (!hadData) return null;
    return { event, data, id: this.lastEventId };
  }
}
