/** One access-log line; field names are nginx's log variables. */
export interface AccessEntry {
  remote_addr: string;
  request_method: string;
  request_uri: string;
  status: number;
  body_bytes_sent: number;
  /** Seconds, millisecond resolution, as nginx's $request_time. */
  request_time: number;
  /** Every attempt's server, comma-separated as nginx lists them; "-" when none was tried. */
  upstream_addr: string;
  upstream_status: string;
  upstream_response_time: string;
  request_id: string;
}

/** nginx prints times in seconds with three decimals. */
export function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}

export function formatSeconds(ms: number): string {
  return (Math.round(ms) / 1000).toFixed(3);
}
