/** An HTTP error answer: status, a code word, and a message with nothing secret in it. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
