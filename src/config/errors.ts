/** Where in the configuration file an error is. `line` and `column` are 1-based. */
export interface ConfigErrorLocation {
  readonly file: string;
  readonly line?: number | undefined;
  readonly column?: number | undefined;
  /** The YAML path of the offending node, e.g. `upstream.servers[1]`; "" for the whole document. */
  readonly path?: string | undefined;
}

/**
 * An invalid or unreadable configuration file. `code` is stable (callers branch on it, not
 * on the message); the message is gcc-style, `file:line:col: text`, so editors can jump to
 * it, or `file: text` when there is no position.
 */
export class ConfigError extends Error {
  readonly code = 'SOCKPROXY_CONFIG_INVALID';
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly path: string;
  /** The message without the location prefix. */
  readonly text: string;

  constructor(text: string, location: ConfigErrorLocation, message = formatMessage(text, location)) {
    super(message);
    this.name = 'ConfigError';
    this.text = text;
    this.file = location.file;
    this.line = location.line;
    this.column = location.column;
    this.path = location.path ?? '';
  }

  /**
   * The file could not be read: nginx's `open() "x" failed (2: No such file or directory)`,
   * worded without the syscall. The file name is already in the text, so no prefix.
   */
  static unreadable(file: string, cause: unknown): ConfigError {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const reason = (code !== undefined && ERRNO_TEXT[code]) || code || String(cause);
    const text = `cannot read config file "${file}": ${reason}`;
    return new ConfigError(text, { file }, text);
  }
}

function formatMessage(text: string, { file, line, column }: ConfigErrorLocation): string {
  return line === undefined ? `${file}: ${text}` : `${file}:${line}:${column ?? 1}: ${text}`;
}

/** strerror() wording for the errors readFile can give, as nginx prints them. */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EMFILE: 'Too many open files',
  EIO: 'Input/output error',
};
