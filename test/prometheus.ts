/**
 * A scrape read the strict way: every line of the text is checked against the exposition format
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) and parsed alone by
 * parse-prometheus-text-format, and the whole text is parsed into its families.
 *
 * Values are read from the lines parsed one by one: the parser (1.1.1) reads a histogram with labels
 * as one series without its labels, sum and count (flattenMetrics merges every label set), so the
 * families it returns cannot tell two routes' latencies apart.
 */
import parsePrometheusTextFormat, { type Family } from "parse-prometheus-text-format";

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
/**
 * A value as Prometheus reads it (Go's strconv.ParseFloat): NaN and Inf in any case. prom-client
 * writes NaN as `Nan` (an event loop lag before its first sample), which Prometheus accepts.
 */
const FLOAT = "[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?[Ii][Nn][Ff]|[Nn][Aa][Nn]";
const SAMPLE_LINE = new RegExp(`^(${NAME})(\\{(?:${LABEL})(?:,${LABEL})*,?\\}|\\{\\})? (?:${FLOAT})(?: -?\\d+)?$`);
const HELP_LINE = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** One sample line: its full name (with _bucket, _sum, _count), labels and value. */
export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  /** The families as the parser reads the whole text (names, HELP, TYPE). */
  families: Family[];
  /** Every sample line, in order. */
  series: Series[];
  /** The value of the sample `name` whose labels include `labels`; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The histogram `name` of the label set that includes `labels`: its count, sum and buckets by `le`. */
  histogram(name: string, labels?: Record<string, string>): { count: number; sum: number; buckets: Record<string, number> } | undefined;
}

const includes = (s: Series, labels: Record<string, string>) => Object.entries(labels).every(([k, v]) => s.labels[k] === v);

/** Parses `text`; throws naming the first line that is not valid exposition format. */
export function parseScrape(text: string): Scrape {
  const series: Series[] = [];
  const typed = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const type = TYPE_LINE.exec(line);
      if (type) typed.set(type[1]!, type[2]!);
      else if (!HELP_LINE.test(line)) throw new Error(`not a HELP or TYPE line: ${JSON.stringify(line)}`);
      continue;
    }
    const m = SAMPLE_LINE.exec(line);
    if (!m) throw new Error(`not a sample line of the exposition format: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const family = name.replace(/_(bucket|sum|count)$/, "");
    const type = typed.get(name) ?? typed.get(family);
    if (!type) throw new Error(`a sample without a TYPE line before it: ${JSON.stringify(line)}`);
    if (typed.get(name) === undefined && type !== "histogram" && type !== "summary") throw new Error(`a suffixed sample of a ${type}: ${JSON.stringify(line)}`);
    const alone = parsePrometheusTextFormat(`${line}\n`);
    const sample = alone[0]?.metrics[0];
    if (alone.length !== 1 || alone[0]!.metrics.length !== 1 || alone[0]!.name !== name || sample?.value === undefined)
      throw new Error(`the parser read ${JSON.stringify(line)} as ${JSON.stringify(alone)}`);
    series.push({ name, labels: sample.labels ?? {}, value: Number(sample.value) });
  }
  const families = parsePrometheusTextFormat(text);
  if (families.length !== typed.size) throw new Error(`the parser read ${families.length} families, the text declares ${typed.size}`);
  const value = (name: string, labels: Record<string, string> = {}) => series.find((s) => s.name === name && includes(s, labels))?.value;
  return {
    families,
    series,
    value,
    histogram: (name, labels = {}) => {
      const count = value(`${name}_count`, labels);
      if (count === undefined) return undefined;
      const buckets: Record<string, number> = {};
      for (const s of series) if (s.name === `${name}_bucket` && includes(s, labels)) buckets[s.labels.le!] = s.value;
      return { count, sum: value(`${name}_sum`, labels)!, buckets };
    },
  };
}
