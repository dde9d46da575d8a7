// Browser downloads of signed, same-origin links: a download cannot carry the Authorization
// header, so the server signs a short-lived link (CreateExportLink for a CSV export,
// CreateModelDownloadLink for a version's ONNX file) and the browser streams the answer to
// disk itself.
/**
 * Starts a browser download of a signed same-origin link (a CSV export): an anchor with
 * `download`, clicked. The browser streams the answer to disk itself; the bytes never pass
 * through the page's memory (no fetch, no XHR, no Blob). Only a path on the app's own
 * origin is followed.
 */
export function downloadByLink(url: string, fileName: string): void {
  const target = new URL(url, window.location.origin);
  if (target.origin !== window.location.origin || !target.pathname.startsWith("/api/")) {
    throw new Error(`refusing to download from ${target.origin}${target.pathname}: not this app's API`);
  }
  const link = document.createElement("a");
  link.href = target.href;
  link.download = fileName;
  link.rel = "noopener";
  link.style.display = "none";
  document.body.append(link);
  link.click();
  link.remove();
}
