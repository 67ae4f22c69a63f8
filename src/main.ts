#!/usr/bin/env bun
/** The binary's entry: parse argv, dispatch one command, map failures to exit codes (2 = usage). */
import { activity, ACTIVITY_USAGE } from "./cli/activity";
import { backup, BACKUP_USAGE, restore, RESTORE_USAGE } from "./cli/backup";
import { config, CONFIG_USAGE } from "./cli/config";
import { exportCommand, EXPORT_USAGE } from "./cli/export";
import { importCommand, IMPORT_USAGE } from "./cli/import";
import { migrate, MIGRATE_USAGE } from "./cli/migrate";
import { healthcheck, HEALTHCHECK_USAGE } from "./cli/healthcheck";
import { serve, SERVE_USAGE } from "./cli/serve";
import { commandLine } from "./cli/invocation";
import { GENERATE_USAGE, generateToken, tokens, TOKENS_USAGE } from "./cli/tokens";
import { ConfigFileError, UsageError } from "./config";
import { redactUrlsIn } from "./store/open";
import { VERSION } from "./version";

const USAGE = `scimd ${VERSION}: a SCIM 2.0 service provider in one binary

Usage: scimd <command> [options]

Commands:
  serve            serve the SCIM API
  generate-token   create a bearer token for an identity provider
  tokens           list, rotate or revoke tokens
  activity         what the IdP changed, when and with which token (the activity log), newest first
  config           print the configuration serve runs with (options, SCIMD_*, --config FILE), with
                   the source of each value
  healthcheck      exit 0 when a running scimd is ready (GET /readyz), 1 when not (Docker, systemd)
  backup           copy the database while serve runs, verified (--dir and --keep for a rotating set)
  restore          put a backup back (with the server stopped); the replaced content is kept beside it
  export           write every User and Group as JSON, JSON lines or CSV (spreadsheets, migrations)
  import           load an export into an empty database, keeping ids and timestamps
  migrate          copy a database into an empty one, SQLite to PostgreSQL or back (tokens and
                   activity too), then verify the copy

Each command's options and examples:
  ${commandLine("serve", ["--help"])}
  ${commandLine("generate-token", ["--help"])}
  ${commandLine("tokens", ["--help"])}
  ${commandLine("activity", ["--help"])}
  ${commandLine("config", ["--help"])}
  ${commandLine("healthcheck", ["--help"])}
  ${commandLine("backup", ["--help"])}
  ${commandLine("restore", ["--help"])}
  ${commandLine("export", ["--help"])}
  ${commandLine("import", ["--help"])}
  ${commandLine("migrate", ["--help"])}

Options:
  --help           show this help
  --version        print the version

First run (serve creates ./data/scimd.db; then, in another terminal, create a token for your IdP):
  ${commandLine("serve")}
  ${commandLine("generate-token", ["--name", "okta"])}`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case "--help":
      case "-h":
      case "help":
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      case "--version":
      case "-v":
      case "version":
        console.log(VERSION);
        return 0;
      case "serve":
        return await serve(rest);
      case "generate-token":
        return await generateToken(rest);
      case "tokens":
        return await tokens(rest);
      case "activity":
        return await activity(rest);
      case "config":
        return await config(rest);
      case "healthcheck":
        return await healthcheck(rest);
      case "backup":
        return await backup(rest);
      case "restore":
        return await restore(rest);
      case "export":
        return await exportCommand(rest);
      case "import":
        return await importCommand(rest);
      case "migrate":
        return await migrate(rest);
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    // A mistake in the config file is one line: the fix is in the file, the usage would not help.
    if (e instanceof ConfigFileError) {
      console.error(`scimd: ${redactUrlsIn(e.message)}`);
      return 2;
    }
    if (e instanceof UsageError) {
      console.error(`scimd: ${redactUrlsIn(e.message)}\n`);
      const usage: Record<string, string> = { serve: SERVE_USAGE, "generate-token": GENERATE_USAGE, tokens: TOKENS_USAGE, activity: ACTIVITY_USAGE, config: CONFIG_USAGE, healthcheck: HEALTHCHECK_USAGE, backup: BACKUP_USAGE, restore: RESTORE_USAGE, export: EXPORT_USAGE, import: IMPORT_USAGE, migrate: MIGRATE_USAGE };
      console.error(usage[cmd ?? ""] ?? USAGE);
      return 2;
    }
    // Any other failure (a store that cannot be opened, a busy port, …) is one line and exit code 1.
    // A message repeats what was typed at times (a path, a value): a URL in it never shows its password.
    console.error(`scimd: ${redactUrlsIn(e instanceof Error ? e.message : String(e))}`);
    return 1;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
