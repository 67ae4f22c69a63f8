/**
 * Many Users, written fast through the store (no HTTP, one transaction per batch of creates), each
 * as the API would store it (normalizeBody, finalizeResource), and one Group holding them all: the data the export
 * memory test and scripts/bench-export.ts read.
 */
import { NO_QUIRKS } from "../../src/scim/quirks";
import { finalizeResource, normalizeBody } from "../../src/scim/resource";
import { ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_RESOURCE, USER_SCHEMA } from "../../src/scim/schema";
import type { ResourceStore } from "../../src/store/store";

/** The creates queued in one turn of the event loop: the store commits them in one transaction. */
const BATCH = 2000;

/** Users number `from` to `from + n - 1`, and the Group "Everyone <from>" holding them. */
export async function seedUsers(store: ResourceStore, n: number, from = 0): Promise<void> {
  const ids: string[] = [];
  for (let start = from; start < from + n; start += BATCH) {
    const batch: Promise<unknown>[] = [];
    for (let i = start; i < Math.min(from + n, start + BATCH); i++) {
      const id = crypto.randomUUID();
      ids.push(id);
      const body = {
        schemas: [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        userName: `user${i}@example.com`,
        name: { givenName: `Given${i}`, familyName: `Family${i}` },
        displayName: `User ${i}`,
        title: "Engineer",
        emails: [{ value: `user${i}@example.com`, type: "work", primary: true }],
        phoneNumbers: [{ value: `+1 555 ${String(i).padStart(7, "0")}`, type: "work" }],
        [ENTERPRISE_USER_SCHEMA]: { employeeNumber: String(i), department: "R&D", manager: { value: "m-1" } },
      };
      const data = finalizeResource(USER_RESOURCE, normalizeBody(USER_RESOURCE, body, { quirks: NO_QUIRKS }).resource);
      batch.push(store.create("User", { id, data }));
    }
    await Promise.all(batch);
  }
  await store.create("Group", { id: crypto.randomUUID(), data: { schemas: [GROUP_SCHEMA], displayName: `Everyone ${from}` }, members: ids });
}
