/** A gate for fault injection: what waits on `promise` goes on when the test calls `open()`. */
export function gate(): { readonly promise: Promise<void>; open(): void } {
  let open = () => {};
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}
