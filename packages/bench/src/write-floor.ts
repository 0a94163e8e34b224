/**
 * The write floor: what a Node server pays in CPU to hand one buffer to the kernel for each of N
 * loopback sockets, with nothing else going on — no protocol, no JSON, no fan-out bookkeeping.
 * The CPU targets are stated against it ("within about 1.2 times the single-write
 * floor"), and it changes with the machine, so it is measured here rather than quoted.
 *
 * The writer (this process) and a reader child draining the sockets run pinned to different
 * cores by default, like `bench --pin`. Each round writes `frames` frames of `bytes` bytes as one
 * buffer to every socket, then waits `gap` ms (as a publish rate would); CPU is read from
 * process.cpuUsage() around the rounds, split into user and kernel time.
 *
 * `--methods write,native`: `write` is `socket.write` per socket (what any Node server does);
 * `native` is Herald's own send path, `send(2)` from the addon in packages/server/native/herald-send, 32 sockets
 * per call — the floor under Herald's fan-out, and below it there is only the kernel.
 *
 *   node packages/bench/dist/write-floor.js [--sockets 1000] [--bytes 230] [--frames 1,10] [--methods write,native] [--rounds 60] [--gap 50] [--runs 3] [--no-pin]
 */
import { execFileSync, fork } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { plainTcpFd, sendMany } from 'herald/internal/transport/direct-send.js';
import { median, round } from './lib/stats.js';

interface Options {
  sockets: number;
  bytes: number;
  frames: string;
  methods: string;
  rounds: number;
  gap: number;
  runs: number;
  pin: boolean;
}

function readerMain(port: number, sockets: number): void {
  let open = 0;
  for (let i = 0; i < sockets; i++) {
    const s = connect(port, '127.0.0.1', () => {
      if (++open === sockets) process.send?.('ready');
    });
    s.on('data', () => {});
  }
}

async function writerMain(opts: Options): Promise<void> {
  const accepted: Socket[] = [];
  const server = createServer((s) => accepted.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  if (opts.pin) execFileSync('taskset', ['-pc', '0', String(process.pid)], { stdio: 'ignore' });
  const reader = fork(fileURLToPath(import.meta.url), ['--reader', String(port), String(opts.sockets)]);
  if (opts.pin && reader.pid) execFileSync('taskset', ['-pc', '1', String(reader.pid)], { stdio: 'ignore' });
  await new Promise<void>((resolve) => reader.once('message', () => resolve()));
  while (accepted.length < opts.sockets) await new Promise((r) => setTimeout(r, 20));

  const rows: string[] = [];
  const fds = Int32Array.from(accepted.map((s) => plainTcpFd(s)));
  const results = new Int32Array(fds.length);
  const CHUNK = 32;
  const writeRound: Record<string, (buffer: Buffer) => void> = {
    write: (buffer) => {
      for (const s of accepted) s.write(buffer);
    },
    native: (buffer) => {
      for (let i = 0; i < fds.length; i += CHUNK) {
        const n = Math.min(CHUNK, fds.length - i);
        sendMany!(fds.subarray(i, i + n), n, buffer, results.subarray(i, i + n));
      }
      // Anything the kernel did not take (it should take all) would be a wrong floor.
      for (let i = 0; i < fds.length; i++) if (results[i] !== buffer.length) throw new Error(`native send to socket ${i} returned ${results[i]}`);
    },
  };
  const methods = opts.methods.split(',');
  for (const m of methods) {
    if (!(m in writeRound)) throw new Error(`unknown method ${m}: write or native`);
    if (m === 'native' && (!sendMany || fds.some((fd) => fd < 0))) throw new Error('the native send addon is not built (npm run build builds native/herald-send)');
  }
  for (const method of methods)
  for (const frames of opts.frames.split(',').map(Number)) {
    const buffer = Buffer.alloc(opts.bytes * frames, 0x61);
    const write = writeRound[method]!;
    const user: number[] = [];
    const sys: number[] = [];
    for (let run = 0; run < opts.runs; run++) {
      const before = process.cpuUsage();
      for (let r = 0; r < opts.rounds; r++) {
        write(buffer);
        await new Promise((resolve) => setTimeout(resolve, opts.gap));
      }
      const used = process.cpuUsage(before);
      const writes = opts.rounds * accepted.length;
      user.push(used.user / writes);
      sys.push(used.system / writes);
      process.stderr.write(`[write-floor] ${method}, ${frames} frame(s) per write, run ${run + 1}/${opts.runs}: ${round(used.user / writes, 2)} µs user + ${round(used.system / writes, 2)} µs kernel per write\n`);
    }
    const perWrite = median(user.map((u, i) => u + sys[i]!));
    const line = {
      kind: 'write-floor',
      method,
      sockets: opts.sockets,
      bytes_per_frame: opts.bytes,
      frames_per_write: frames,
      us_per_write: round(perWrite, 2),
      us_per_frame: round(perWrite / frames, 2),
      user_us_per_write: round(median(user), 2),
      kernel_us_per_write: round(median(sys), 2),
      runs: opts.runs,
      pinned: opts.pin,
    };
    console.log(JSON.stringify(line));
    rows.push(`${method.padEnd(7)} ${String(frames).padStart(6)}  ${String(line.us_per_write).padStart(9)}  ${String(line.us_per_frame).padStart(9)}  ${String(line.user_us_per_write).padStart(6)}  ${String(line.kernel_us_per_write).padStart(6)}`);
  }
  console.log(`\nmethod  frames  µs/write   µs/frame   user    kernel   (medians of ${opts.runs} runs, ${opts.sockets} sockets, ${opts.bytes} B frames)`);
  for (const r of rows) console.log(r);
  reader.kill();
  for (const s of accepted) s.destroy();
  server.close();
}

if (process.argv[2] === '--reader') {
  readerMain(Number(process.argv[3]), Number(process.argv[4]));
} else {
  const program = new Command('write-floor')
    .description('CPU per socket write to N loopback sockets: the floor under any Node push server')
    .option('--sockets <n>', 'sockets written to each round', Number, 1000)
    .option('--bytes <n>', 'bytes per frame (a Herald fan-out frame is ≈ 230)', Number, 230)
    .option('--frames <list>', 'frames per write, comma-separated', '1,10')
    .option('--methods <list>', 'write (socket.write) and/or native (Herald\'s send(2) addon, 32 sockets per call)', 'write,native')
    .option('--rounds <n>', 'rounds per run', Number, 60)
    .option('--gap <ms>', 'pause between rounds (50 = 20 publishes/s)', Number, 50)
    .option('--runs <n>', 'runs per frame count; the median is reported', Number, 3)
    .option('--no-pin', 'do not pin writer and reader to cores 0 and 1');
  program.parse();
  await writerMain(program.opts<Options>());
}
