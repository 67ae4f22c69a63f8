/**
 * Loaded before every test file (bunfig.toml): an afterAll here runs once, after the whole run, so
 * the PostgreSQL cluster the HTTP tests share on SCIMD_TEST_STORE=postgres is stopped and removed.
 */
import { afterAll } from "bun:test";
import { stopSharedCluster } from "./store/postgres/shared-cluster";

afterAll(stopSharedCluster, 60_000);
