export const webDir: string;
/** Generate into `${outBase}/src/gen`; returns that folder. */
export function generate(outBase?: string): string;
