/**
 * Reads a V8 `.cpuprofile` (as `node --cpu-prof` writes it) and names the
 * frames that took the most self time, so each scenario's limit is stated
 * from a measurement.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One frame's share of the busy (non-idle) samples. */
export interface TopFrame {
  /** `function (file:line)`, paths relative to the repository. */
  readonly frame: string;
  /** Self time as a percentage of busy time. */
  readonly selfPercent: number;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The `limit` frames with the most self time, by name and place. */
export function topFrames(file: string, limit = 10): TopFrame[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;

  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[i] ?? 0;
    if (!node || node.callFrame.functionName === '(idle)') return;
    const name = label(node);
    self.set(name, (self.get(name) ?? 0) + delta);
    busy += delta;
  });

  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([frame, time]) => ({
      frame,
      selfPercent: Math.round((1000 * time) / busy) / 10,
    }));
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || '(anonymous)';
  if (!url) return name;
  const path = url.startsWith('file://')
    ? relative(ROOT, fileURLToPath(url))
    : url;
  return `${name} (${path}:${lineNumber + 1})`;
}
