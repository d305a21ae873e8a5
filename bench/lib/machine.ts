/** The machine and tools a run measured on, written beside its numbers. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { NODE } from './child.ts';

/** Facts about the machine, as text the reader can check. */
export function describeMachine(): Record<string, string> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  // Some tools print their version on stderr or exit non-zero after it.
  const sh = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || `${cmd}: unavailable`;
  };
  return {
    nproc: sh('nproc', []),
    cpuModel:
      /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? '?',
    memory: sh('free', ['-h']).split('\n')[1]?.replace(/\s+/g, ' ') ?? '?',
    kernel: sh('uname', ['-r']),
    loadAverage: loadavg()
      .map((n) => n.toFixed(2))
      .join(' '),
    node: sh(NODE, ['--version']),
    wrk: sh('wrk', ['--version']).split('\n')[0] ?? '?',
    h2load: sh('h2load', ['--version']),
    nginx: sh('/usr/sbin/nginx', ['-v']),
    // What was measured: the commit, and the files outside bench/ that
    // differed from it when the report was written.
    commit: sh('git', ['rev-parse', '--short', 'HEAD']),
    uncommitted:
      spawnSync('git', ['status', '--porcelain', '--', '.', ':!bench'], {
        encoding: 'utf8',
      })
        .stdout.split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => l.trim().replace(/^\S+\s+/, ''))
        .join(', ') || 'none',
  };
}
