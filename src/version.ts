/** The version, injected by scripts/build.ts with `define`; "dev" when run from source. */
declare const SCIMD_VERSION: string | undefined;
export const VERSION: string = typeof SCIMD_VERSION === "string" ? SCIMD_VERSION : "dev";
