/**
 * What the expensive-search tests share: users written straight into a store in large group commits
 * (10,000 in about a second), and the filters of the issue "scimd under pressure" — a 4 KB `or` chain
 * of `co` terms over multi-valued attributes that SQLite can only answer by evaluating every term on
 * every user, which takes seconds.
 */
import type { ResourceStore } from "../src/store/store";
import { USER } from "./helpers";

/** Creates users `user<i>@example.com` (i from 0) with two emails, a phone and an address each. */
export async function populateUsers(store: Pick<ResourceStore, "create">, n: number): Promise<void> {
  for (let i = 0; i < n; i += 2000) {
    await Promise.all(
      Array.from({ length: Math.min(2000, n - i) }, (_, k) => {
        const j = i + k;
        return store.create("User", {
          id: crypto.randomUUID(),
          data: {
            schemas: [USER],
            userName: `user${j}@example.com`,
            displayName: `User ${j}`,
            name: { givenName: `Given${j}`, familyName: `Family${j}` },
            emails: [{ value: `user${j}@example.com`, type: "work", primary: true }, { value: `u${j}@home.example`, type: "home" }],
            phoneNumbers: [{ value: `+1 555 ${String(j).padStart(6, "0")}`, type: "work" }],
            addresses: [{ streetAddress: `${j} Main St`, locality: "Springfield", type: "work" }],
          },
        });
      }),
    );
  }
}

/** An `or` chain of `co` terms over emails and addresses, matching no one, cut to `maxLength` (the filter limit). */
export function expensiveFilter(terms = 145, maxLength = 4096): string {
  const parts: string[] = [];
  for (let i = 0; i < terms; i++) parts.push(i % 2 ? `emails co "zz${i}q"` : `addresses.streetAddress co "zz${i}q"`);
  let f = parts.join(" or ");
  while (f.length > maxLength) f = f.slice(0, f.lastIndexOf(" or "));
  return f;
}
