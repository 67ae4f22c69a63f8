/** The HTTP ceiling for the benchmark: a minimal Elysia server answering GET / with a small JSON body. */
import { Elysia } from "elysia";

const port = Number(process.argv[2] ?? 0);
const app = new Elysia().get("/", () => new Response('{"hello":"world"}', { headers: { "Content-Type": "application/json" } })).listen({ port, hostname: "127.0.0.1" });
console.log(`listening ${app.server!.port}`);
