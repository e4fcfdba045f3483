/**
 * docker/'s files as the engine-free tests read them: the Dockerfile (a small parser for
 * the instructions they check), the compose file, sockproxy's configuration and the
 * Kubernetes manifests (the `yaml` package).
 */
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { repoPath } from '../helpers/paths.js';

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, CMD, ... */
  readonly keyword: string;
  /** The rest of the instruction, continuation lines joined. */
  readonly args: string;
  /** 1-based, where the instruction starts, for messages. */
  readonly line: number;
}

export interface Stage {
  readonly name: string;
  /** The FROM image: another stage's name or an image reference. */
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM, name → default. */
  readonly globalArgs: ReadonlyMap<string, string | undefined>;
  readonly stages: readonly Stage[];
  stage(name: string): Stage;
  /**
   * The stage's instructions after those of the stages it is built FROM, parent first:
   * what an image of that target has (its CMD is the last CMD in the list).
   */
  inherited(name: string): Instruction[];
}

/** Instructions, one per line, `\` continuing a line; comments and blank lines dropped. */
function instructions(text: string): Instruction[] {
  const result: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === undefined && (line === '' || line.startsWith('#'))) return;
    if (pending !== undefined && line.startsWith('#')) return; // a comment inside a continuation
    const continues = line.endsWith('\\');
    const body = continues ? line.slice(0, -1).trim() : line;
    pending = pending === undefined ? { text: body, line: index + 1 } : { text: `${pending.text} ${body}`, line: pending.line };
    if (continues) return;
    const match = /^(\S+)\s*(.*)$/.exec(pending.text)!;
    result.push({ keyword: match[1]!.toUpperCase(), args: match[2]!, line: pending.line });
    pending = undefined;
  });
  return result;
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs = new Map<string, string | undefined>();
  const stages: { name: string; from: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions(text)) {
    if (instruction.keyword === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match) throw new Error(`Dockerfile:${instruction.line}: cannot read FROM ${instruction.args}`);
      stages.push({ from: match[1]!, name: match[2] ?? String(stages.length), instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new Error(`Dockerfile:${instruction.line}: ${instruction.keyword} before FROM`);
      const [name, value] = instruction.args.split('=', 2);
      globalArgs.set(name!, value);
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  const stage = (name: string): Stage => {
    const found = stages.find((candidate) => candidate.name === name);
    if (!found) throw new Error(`the Dockerfile has no stage "${name}" (it has ${stages.map((s) => s.name).join(', ')})`);
    return found;
  };
  const inherited = (name: string): Instruction[] => {
    const own = stage(name);
    const parent = stages.some((candidate) => candidate.name === own.from) ? inherited(own.from) : [];
    return [...parent, ...own.instructions];
  };
  return { globalArgs, stages, stage, inherited };
}

/** The arguments of the last `keyword` instruction in `list`. */
export function last(list: readonly Instruction[], keyword: string): string | undefined {
  return list.filter((instruction) => instruction.keyword === keyword).at(-1)?.args;
}

/** An exec-form (JSON array) command, as CMD ["node", ...] has it. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) {
    throw new Error(`not an exec-form command: ${args}`);
  }
  return parsed;
}

/** HEALTHCHECK --opt=value ... CMD [...]: its options and its exec-form command. */
export function healthcheck(args: string): { options: Record<string, string>; command: string[] } {
  const match = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])$/.exec(args);
  if (!match) throw new Error(`cannot read HEALTHCHECK ${args}`);
  const options = Object.fromEntries(
    match[1]!
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((option) => option.slice(2).split('=', 2) as [string, string]),
  );
  return { options, command: execForm(match[2]!) };
}

/** The value of `--flag VALUE` in a command line. */
export function flag(command: readonly string[], name: string): string | undefined {
  const index = command.indexOf(name);
  return index === -1 ? undefined : command[index + 1];
}

export const DOCKERFILE = repoPath('docker/Dockerfile');
export const COMPOSE_FILE = repoPath('docker/docker-compose.yml');
export const UPSTREAM_YAML = repoPath('docker/upstream.yaml');

export function readDockerfile(): Dockerfile {
  return parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
}

/** Parsed YAML of a file in the repository. */
export function readYaml<T>(relative: string): T {
  return parse(readFileSync(repoPath(relative), 'utf8')) as T;
}

/** Every document of a multi-document YAML file. */
export function readYamlDocuments<T>(relative: string): T[] {
  return parseAllDocuments(readFileSync(repoPath(relative), 'utf8')).map((doc) => doc.toJS() as T);
}

/** The proxy's configuration as the images use it: its listen port and its one server's socket path. */
export function upstreamConfig(): { text: string; port: number; socketPath: string; shutdownSeconds: number } {
  const text = readFileSync(UPSTREAM_YAML, 'utf8');
  const config = parse(text) as { listen: number | string; upstream: { servers: string[] } };
  const servers = config.upstream.servers;
  if (servers.length !== 1) throw new Error(`docker/upstream.yaml: expected one server, got ${servers.length}`);
  const socket = /^unix:(\S+)/.exec(servers[0]!);
  if (!socket) throw new Error(`docker/upstream.yaml: the server is not a unix: socket: ${servers[0]}`);
  // How long sockproxy's graceful stop may take, as sockproxy itself reads the file.
  const shutdownSeconds = parseConfig(text, UPSTREAM_YAML).shutdownTimeoutMs / 1000;
  return { text, port: Number(config.listen), socketPath: socket[1]!, shutdownSeconds };
}
