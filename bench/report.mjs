// Renders bench/run.mjs results as the markdown that goes into bench/README.md.

const f1 = (x) => (x === undefined ? '–' : x.toFixed(1));
const f2 = (x) => (x === undefined ? '–' : x.toFixed(2));
/** A scenario's own number of rounds, where it differs from the run's. */
const roundsOf = (scenario) =>
  scenario.rounds ? `; medians of ${scenario.rounds} alternating rounds` : '';
const ratio = (ours, theirs) => (ours && theirs ? `${(theirs / ours).toFixed(2)}x` : '–');
const mark = (ok) => (ok ? 'met' : '**missed**');

function table(head, rows) {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

export function render(results) {
  const { machine: m, scenarios: s } = results;
  const out = [];
  const targets = [];
  out.push(
    `Run on ${m.date}${results.quick ? ' (--quick)' : ''}: ${m.cpu}, ${m.memory} RAM, ${m.os}; Node ${m.node}; ${m.rclone ?? 'no rclone'}; ${m.aws ?? 'no AWS CLI'}. ` +
      `Concurrency ${results.concurrency} for every contender; medians of ${results.rounds} alternating rounds unless noted. ` +
      "Ratios are Sluice's throughput over the peer's (above 1.00x: Sluice is faster); compare ratios, not absolute figures, across runs.",
  );

  if (s.small) {
    out.push(`### 1. Source, ${s.small[0].objects.toLocaleString('en')} objects of 2 KiB\n`);
    out.push(
      'Seconds to fetch every object: `s3-source > /dev/null` (tasks out), `rclone copy` and `aws s3 cp --recursive` to a folder, and a bare SDK loop (list, then GET with the same concurrency).\n',
    );
    out.push(
      table(
        [
          'server',
          'data',
          'Sluice s',
          'rclone s',
          'aws s',
          'SDK loop s',
          'vs rclone',
          'vs aws',
          'vs SDK',
        ],
        s.small.map(({ server, ext, medians: x }) => [
          server,
          ext,
          f2(x.sluice.seconds),
          f2(x.rclone?.seconds),
          f2(x.aws?.seconds),
          f2(x.sdk.seconds),
          ratio(x.sluice.seconds, x.rclone?.seconds),
          ratio(x.sluice.seconds, x.aws?.seconds),
          ratio(x.sluice.seconds, x.sdk.seconds),
        ]),
      ),
    );
    const rclone = s.small.filter((r) => r.medians.rclone);
    if (rclone.length) {
      const worst = Math.min(
        ...rclone.map((r) => r.medians.rclone.seconds / r.medians.sluice.seconds),
      );
      targets.push([
        's3-source >= rclone (many small objects)',
        `${worst.toFixed(2)}x at worst`,
        mark(worst >= 1),
      ]);
    }
    const stub = s.small.filter((r) => r.server === 'stub');
    if (stub.length) {
      const worst = Math.min(...stub.map((r) => r.medians.sdk.seconds / r.medians.sluice.seconds));
      targets.push([
        's3-source >= 0.9x the bare SDK loop on the stub',
        `${worst.toFixed(2)}x at worst`,
        mark(worst >= 0.9),
      ]);
    }
  }

  if (s.big) {
    const mb = s.big[0].bytes / 1e6;
    out.push(`\n### 2. Source, one ${mb} MB JSONL object\n`);
    out.push(
      'MB/s. Sluice parses, validates, hashes and writes every line as a task; the peers copy bytes.\n',
    );
    out.push(
      table(
        [
          'server',
          'Sluice MB/s',
          'rclone MB/s',
          'aws MB/s',
          'SDK loop MB/s',
          'vs rclone',
          'vs aws',
          'vs SDK',
        ],
        s.big.map(({ server, medians: x }) => [
          server,
          f1(mb / x.sluice.seconds),
          x.rclone ? f1(mb / x.rclone.seconds) : '–',
          x.aws ? f1(mb / x.aws.seconds) : '–',
          f1(mb / x.sdk.seconds),
          ratio(x.sluice.seconds, x.rclone?.seconds),
          ratio(x.sluice.seconds, x.aws?.seconds),
          ratio(x.sluice.seconds, x.sdk.seconds),
        ]),
      ),
    );
  }

  if (s.first) {
    out.push('\n### 3. Time to first task\n');
    out.push(
      'Seconds from process start to the first byte on stdout, each connector on its test server (fs on a local folder) holding 1,000 and 100,000 generated items of 512 bytes (objects, files, pages, documents), median of 5 alternating runs.\n',
    );
    const rows = Object.entries(s.first).map(([connector, x]) => {
      const small = x['1000 items']?.seconds;
      const large = x['100000 items']?.seconds;
      return [
        connector,
        f2(small),
        f2(large),
        small && large ? `${(large / small).toFixed(2)}x` : '–',
      ];
    });
    out.push(table(['connector', '1,000 items s', '100,000 items s', '100,000 / 1,000'], rows));
    const all = Object.values(s.first).flatMap((x) => Object.values(x).map((m) => m.seconds));
    const worst = Math.max(...all);
    const spread = Math.max(
      ...Object.values(s.first).map((x) => x['100000 items'].seconds / x['1000 items'].seconds),
    );
    targets.push([
      'time to first task <= 0.5 s, every connector',
      `${worst.toFixed(2)} s at worst`,
      mark(worst <= 0.5),
    ]);
    targets.push([
      'the same for 1,000 and 100,000 items',
      `${spread.toFixed(2)}x at worst`,
      mark(spread <= 1.25),
    ]);
  }

  if (s.rss) {
    out.push('\n### 4. Peak memory while streaming a stub bucket\n');
    out.push(
      'Peak RSS (GNU time %M) of a full run over tiny objects, with Sluice writing into a pipe that is read as it fills (as Prodigy reads it); one run each. The SDK loop, about half as fast, runs up to 100,000 keys only, to keep the run short.\n',
    );
    out.push(
      table(
        ['keys', 'Sluice MB', 'Sluice s', 'SDK loop MB', 'SDK loop s'],
        s.rss.map(({ keys, medians: x }) => [
          keys.toLocaleString('en'),
          f1(x.sluice.rssMB),
          f2(x.sluice.seconds),
          f1(x.sdk?.rssMB),
          f2(x.sdk?.seconds),
        ]),
      ),
    );
    const last = s.rss.at(-1);
    const first = s.rss[0];
    if (last.medians.sluice.rssMB !== undefined) {
      targets.push([
        `peak RSS <= 150 MB at ${last.keys.toLocaleString('en')} keys, flat`,
        `${f1(last.medians.sluice.rssMB)} MB (${f1(first.medians.sluice.rssMB)} MB at ${first.keys.toLocaleString('en')})`,
        mark(
          last.medians.sluice.rssMB <= 150 &&
            last.medians.sluice.rssMB <= first.medians.sluice.rssMB * 1.25,
        ),
      ]);
    }
  }

  if (s.sink) {
    const mb = s.sink[0].bytes / 1e6;
    out.push(`\n### 5. Sink, a ${mb.toFixed(0)} MB db-out file\n`);
    out.push(
      'MB/s. `s3-sink < file` checks every line, stages parts and a manifest, and uploads them (a large part while it is staged) (multipart, 8 MiB parts, 4 at a time); `aws s3 cp file` uploads (8 MiB parts, max_concurrent_requests 4).\n',
    );
    out.push(
      table(
        ['server', 'Sluice MB/s', 'aws MB/s', 'vs aws'],
        s.sink.map(({ server, medians: x }) => [
          server,
          f1(mb / x.sluice.seconds),
          f1(mb / x.aws.seconds),
          ratio(x.sluice.seconds, x.aws.seconds),
        ]),
      ),
    );
    const worst = Math.min(...s.sink.map((r) => r.medians.aws.seconds / r.medians.sluice.seconds));
    targets.push(['sink >= 0.9x aws s3 cp', `${worst.toFixed(2)}x at worst`, mark(worst >= 0.9)]);
  }

  if (s.codec) {
    const c = s.codec;
    out.push(`\n### 6. JSONL codec\n`);
    out.push(
      `Parse + serialize of ${(c.file.bytes / 1e6).toFixed(0)} MB of NER answers, median of ${c.rounds} rounds (\`codec.mjs\`).\n`,
    );
    out.push(
      table(
        ['contender', 'MB/s', 'Sluice / this'],
        Object.entries(c.contenders).map(([name, x]) => [
          name,
          f1(x.medianMBps),
          `${(c.contenders.sluice.medianMBps / x.medianMBps).toFixed(2)}x`,
        ]),
      ),
    );
    targets.push([
      'codec >= 1x the plain readline loop',
      `${c.ratios.sluiceOverReadline.toFixed(2)}x`,
      mark(c.ratios.sluiceOverReadline >= 1),
    ]);
  }

  if (s.convert) {
    const c = s.convert;
    const x = c.medians;
    out.push('\n### 8. Conversion: a JSONL file into tasks\n');
    out.push(
      `Seconds to turn a file of ${c.tasks.toLocaleString('en')} small text tasks (${(c.bytes / 1e6).toFixed(0)} MB) into tasks on stdout (to /dev/null): \`fs-source file\` (checked, stamped with lineage, hashed) against a bare \`readline\` + \`JSON.parse\` + \`JSON.stringify\` loop that stamps \`meta.source\` (\`bare-loop.mjs\`)${roundsOf(c)}.\n`,
    );
    out.push(
      table(
        ['contender', 'seconds', 'µs a task', 'Sluice vs this'],
        Object.entries(x).map(([name, m]) => [
          name,
          f2(m.seconds),
          ((m.seconds / c.tasks) * 1e6).toFixed(1),
          ratio(x.sluice.seconds, m.seconds),
        ]),
      ),
    );
    const r = x.bare.seconds / x.sluice.seconds;
    targets.push(['conversion >= 0.6x the bare loop', `${r.toFixed(2)}x`, mark(r >= 0.6)]);
  }

  if (s.loader) {
    const l = s.loader;
    const x = l.medians;
    out.push("\n### 9. Prodigy's side: the Python loader against the plain pipe\n");
    out.push(
      `Tasks a second read by Python (one \`json.loads\` a line, as Prodigy's JSONL loader does) from \`fs-source\` over the conversion scenario's ${l.tasks.toLocaleString('en')} tasks: \`fs-source file | python3\` (the pipe, as \`prodigy ... -\` reads stdin) and \`prodigy_sluice.loader.load(file)\` (\`--loader sluice\`, which runs the CLI itself)${roundsOf(l)}.\n`,
    );
    out.push(
      table(
        ['contender', 'seconds', 'tasks/s', 'vs pipe'],
        Object.entries(x).map(([name, m]) => [
          name,
          f2(m.seconds),
          Math.round(l.tasks / m.seconds).toLocaleString('en'),
          ratio(m.seconds, x.pipe.seconds),
        ]),
      ),
    );
  }

  if (s.media) {
    const m = s.media;
    const c = m.contenders;
    out.push('\n### 7. Media: what the annotator waits for each image\n');
    out.push(
      `Milliseconds from the browser's request to the last byte of each of ${m.images} images of ${(m.size / 1000).toFixed(0)} kB, annotated in sequence (${m.thinkMs} ms on each), from a stub bucket behind a proxy that holds every store request ${m.latencyMs} ms; all rounds pooled. \`prefetch\`: the media proxy as it runs by default (reading ahead); \`proxy\`: with \`--media-prefetch 0\`; \`direct\`: \`--media signed\`, the browser fetching presigned URLs from the store.\n`,
    );
    out.push(
      table(
        ['contender', 'p50 ms', 'p99 ms', 'p50 vs direct'],
        Object.entries(c).map(([name, x]) => [
          name,
          f1(x.p50),
          f1(x.p99),
          `${(c.direct.p50 / x.p50).toFixed(2)}x`,
        ]),
      ),
    );
    targets.push([
      'media p50 < 5 ms with prefetch',
      `${f1(c.prefetch.p50)} ms (direct GET ${f1(c.direct.p50)} ms)`,
      mark(c.prefetch.p50 < 5),
    ]);
  }

  out.splice(1, 0, `\n### Targets\n\n${table(['target', 'measured', ''], targets)}\n`);
  return out.join('\n');
}
