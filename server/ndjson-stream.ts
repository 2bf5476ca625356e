// Streamed management calls (`signet gc`, `signet mirror run`): the server answers NDJSON, one
// event a line, or an OCI error before the stream starts.
import { ApiCallError } from './api-client.js';

/** The OCI error of a refused streamed call, as the CLI reports it. */
export async function streamFailure(res: Response): Promise<ApiCallError> {
  const text = await res.text();
  let message = `${res.status} ${res.statusText}`;
  try {
    const err = (JSON.parse(text) as { errors?: { code: string; message: string }[] }).errors?.[0];
    if (err) message = `${err.code}: ${err.message}`;
  } catch {
    // keep the status line
  }
  return new ApiCallError(res.status, message);
}

/** NDJSON events of a streamed answer. */
export async function* ndjsonEvents<T>(body: AsyncIterable<Uint8Array>): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) yield JSON.parse(line) as T;
    }
  }
}
