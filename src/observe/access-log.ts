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

/**
 * One access-log line of a stream (L4) session, with ngx_stream_core_module's and
 * ngx_stream_upstream_module's variable names.
 */
export interface StreamAccessEntry {
  /** $protocol: always "TCP" (Unix-socket sessions included, as nginx: SOCK_STREAM). */
  protocol: 'TCP';
  remote_addr: string;
  /** $server_addr, $server_port: where the client connected; "unix:" and no port on a Unix-socket listener. */
  server_addr: string;
  server_port: number | undefined;
  /** $status: 200 once connected to a server, whatever ended the session; 502 when no server could be reached. */
  status: number;
  /** Bytes sent to and received from the client. */
  bytes_sent: number;
  bytes_received: number;
  /** Seconds, millisecond resolution, as nginx's $session_time. */
  session_time: number;
  /** Every attempt's server, comma-separated as nginx lists them; the upstream name when none was usable. */
  upstream_addr: string;
  upstream_bytes_sent: string;
  upstream_bytes_received: string;
  /** Per attempt, seconds; "-" for an attempt that did not connect. */
  upstream_connect_time: string;
}

/** nginx prints times in seconds with three decimals. */
export function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}

export function formatSeconds(ms: number): string {
  return (Math.round(ms) / 1000).toFixed(3);
}
