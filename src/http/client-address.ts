/**
 * The client address of a request, for the failed-auth limiter and the log. Without --trust-proxy it
 * is the peer of the connection, and X-Forwarded-For is ignored: any client can send that header.
 * With it, a request whose peer lies in a trusted range (the reverse proxy) is taken to come from
 * the rightmost X-Forwarded-For hop that is not itself trusted: the hops to its right were appended
 * by trusted proxies, those to its left by whoever sent the request, who could write anything there.
 */

/** An address as its bytes: 4 for IPv4, 16 for IPv6. */
type Bytes = Uint8Array;

export interface Cidr {
  bytes: Bytes;
  bits: number;
}

function parseV4(s: string): Bytes | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0") || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

function parseV6(s: string): Bytes | undefined {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    const parts = h.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseV4(p);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a dual-stack socket reports IPv4 peers) as IPv4. */
function unmapped(b: Bytes): Bytes {
  if (b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return b.slice(12);
  return b;
}

/** The bytes of an IP address (IPv4, IPv6, an IPv4-mapped IPv6 address as IPv4), or undefined. */
export function parseIp(s: string): Bytes | undefined {
  const t = s.trim();
  const b = t.includes(":") ? parseV6(t) : parseV4(t);
  return b && unmapped(b);
}

/** `ADDRESS` or `ADDRESS/BITS`; throws an Error saying what is wrong. */
export function parseCidr(s: string): Cidr {
  const [addr, bitsText, extra] = s.trim().split("/");
  const bytes = addr === undefined || extra !== undefined ? undefined : parseIp(addr);
  if (!bytes) throw new Error(`'${s}' is not an IP address or CIDR range (such as 10.0.0.0/8, 127.0.0.1 or fd00::/8)`);
  const mapped = addr!.includes(":") && bytes.length === 4;
  const max = bytes.length * 8;
  if (bitsText === undefined) return { bytes, bits: max };
  let bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
  // ::ffff:10.0.0.0/104 is the IPv4 range 10.0.0.0/8.
  if (mapped) bits -= 96;
  if (!(bits >= 0 && bits <= max)) throw new Error(`'${s}': the prefix length ${mapped ? "of an IPv4-mapped range must be 96..128" : `must be 0..${max}`}`);
  return { bytes, bits };
}

function inCidr(b: Bytes, c: Cidr): boolean {
  if (b.length !== c.bytes.length) return false;
  let bits = c.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((b[i]! & mask) !== (c.bytes[i]! & mask)) return false;
  }
  return true;
}

/** An X-Forwarded-For hop as an address: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`. */
function hopAddress(hop: string): string {
  const h = hop.trim();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end > 0 ? h.slice(1, end) : h;
  }
  const colon = h.indexOf(":");
  return colon > 0 && colon === h.lastIndexOf(":") ? h.slice(0, colon) : h;
}

/**
 * The address written from its bytes, one text per address (`2001:DB8::1` and `2001:db8:0::1` are
 * the same client to the limiter): IPv4 dotted (a mapped IPv6 address too), IPv6 as RFC 5952 §4 has
 * it: lower case, no leading zeros, the longest run of two or more zero groups (the first of equal
 * ones) as `::`. A zone (`%eth0`) is not kept.
 */
export function formatIp(b: Bytes): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  return best < 0 ? hex(groups) : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLength))}`;
}

export interface ClientAddressResolver {
  /** The client address of a request whose connection's peer is `peer`. */
  (peer: string, forwardedFor: string | null): string;
}

/**
 * The resolver for `trusted` (--trust-proxy's CIDRs; throws for one that does not parse). With none,
 * the peer always. A hop that is not an address ends the walk at the last trusted address seen.
 */
export function clientAddressResolver(trusted: readonly string[]): ClientAddressResolver {
  const ranges = trusted.map(parseCidr);
  if (!ranges.length) return (peer) => peer;
  const isTrusted = (b: Bytes) => ranges.some((r) => inCidr(b, r));
  return (peer, forwardedFor) => {
    const pb = parseIp(peer);
    if (!pb || !isTrusted(pb)) return pb ? formatIp(pb) : peer;
    let client = formatIp(pb);
    if (!forwardedFor) return client;
    const hops = forwardedFor.split(",");
    for (let i = hops.length - 1; i >= 0; i--) {
      const text = hopAddress(hops[i]!);
      const b = parseIp(text);
      if (!b) return client;
      client = formatIp(b);
      if (!isTrusted(b)) return client;
    }
    return client;
  };
}
