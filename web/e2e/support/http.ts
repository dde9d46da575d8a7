// The tests talk to the server from outside the app too (checks of what it stored, seeding),
// with Node's fetch. The app's lint rule against `fetch` keeps components on the API module;
// it is not about the tests' side.
// eslint-disable-next-line no-restricted-globals -- the test's own client, not the app's
export const serverFetch: typeof fetch = fetch;
