// The console's only way to the server: the HTTP API with the signed-in token, errors as the
// API words them, and server-sent events read through fetch (EventSource cannot send a token).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}` };
    const init = { method, headers };
    if (body instanceof Uint8Array || typeof body === 'string') {
      init.body = body;
      headers['Content-Type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'unreachable', `cannot reach the server: ${e.message}`);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (!response.ok) {
      const error = data && data.error ? data.error : { code: 'http', message: text };
      throw new ApiError(response.status, error.code, error.message || response.statusText);
    }
    return data;
  }

  get(path) { return this.call('GET', path); }

  // The body of a GET as text, never parsed (a key's value), or null on 404.
  async text(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${this.token}` } }).catch((e) => {
      throw new ApiError(0, 'unreachable', `cannot reach the server: ${e.message}`);
    });
    if (response.status === 404) return null;
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new ApiError(response.status, data.error?.code ?? 'http', data.error?.message ?? response.statusText);
    }
    return { text: await response.text(), version: response.headers.get('sluice-kv-version') };
  }
  post(path, body) { return this.call('POST', path, body === undefined ? {} : body); }
  patch(path, body) { return this.call('PATCH', path, body); }
  put(path, body) { return this.call('PUT', path, body); }
  delete(path) { return this.call('DELETE', path); }

  // Yields {event, data} for each server-sent event until `signal` aborts or the stream ends.
  async *events(path, signal) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${this.token}`, Accept: 'text/event-stream' },
      signal,
    });
    if (!response.ok || !response.body) {
      throw new ApiError(response.status, 'stream', `the event stream failed (${response.status})`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replaceAll('\r\n', '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let rest = colon < 0 ? '' : line.slice(colon + 1);
          if (rest.startsWith(' ')) rest = rest.slice(1);
          if (field === 'event') event = rest;
          if (field === 'data') data.push(rest);
        }
        if (data.length) yield { event, data: data.join('\n') };
      }
    }
  }
}

export const seg = (name) => encodeURIComponent(name);
