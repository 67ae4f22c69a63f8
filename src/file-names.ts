/**
 * Names of the files scimd writes beside a database (rotated backups, side copies of a restore):
 * a UTC time stamp, and the first of a series of names that no file has yet.
 */

/** A UTC time for file names: 20261202T101500Z. */
export const fileStamp = (d = new Date()) => d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");

/** The first of `nameOf(1)`, `nameOf(2)`, `nameOf(3)`, … that `taken` says no file has. */
export function firstFreeName(nameOf: (n: number) => string, taken: (name: string) => boolean): string {
  let n = 1;
  while (taken(nameOf(n))) n++;
  return nameOf(n);
}
