import { describe, expect, it } from 'vitest';
import { parseDurationMs, parseDurationSeconds, parseInteger, parseSize } from '../../../src/config/units.js';

describe('parseDurationMs (ngx_parse_time, msec mode)', () => {
  it.each<[string | number, number]>([
    ['500ms', 500],
    ['0', 0],
    ['60', 60_000],
    [60, 60_000],
    [0, 0],
    ['60s', 60_000],
    ['1m', 60_000],
    ['1m30s', 90_000],
    ['1m 30s', 90_000],
    ['1m30', 90_000], // a trailing bare number is seconds
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1w', 604_800_000],
    ['1h1m1s1ms', 3_661_001],
    ['2s500ms', 2_500],
  ])('%j → %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toEqual({ value: ms });
  });

  it.each<string | number>([
    '',
    's',
    'ms',
    '-1',
    -1,
    '1.5',
    1.5,
    '1.5s',
    '10x',
    '1S',
    '1H',
    '1M', // months exist only in seconds mode
    '1y',
    '30s1m', // units must decrease
    '1s1s',
    '1m30s ms',
    '99999999999999999999',
    '1e3',
  ])('%j is invalid', (text) => {
    expect(parseDurationMs(text)).toEqual({ error: `invalid duration "${text}"` });
  });
});

describe('parseDurationSeconds (ngx_parse_time, seconds mode, as for fail_timeout)', () => {
  it.each<[string | number, number]>([
    ['10', 10],
    [10, 10],
    ['0', 0],
    ['10s', 10],
    ['1m30s', 90],
    ['1h', 3600],
    ['1d', 86_400],
    ['1M', 30 * 86_400],
    ['1y', 365 * 86_400],
  ])('%j → %d s', (text, seconds) => {
    expect(parseDurationSeconds(text)).toEqual({ value: seconds });
  });

  it.each<string | number>(['500ms', '1s500ms', '-1', -1, '1.5', 1.5, '', 'ten', '10 s'])('%j is invalid', (text) => {
    expect(parseDurationSeconds(text)).toEqual({ error: `invalid duration "${text}"` });
  });
});

describe('parseSize (ngx_parse_offset)', () => {
  it.each<[string | number, number]>([
    ['0', 0],
    [0, 0],
    ['1024', 1024],
    [1024, 1024],
    ['1k', 1024],
    ['1K', 1024],
    ['1m', 1_048_576],
    ['1M', 1_048_576],
    ['4g', 4 * 1024 ** 3],
    ['4G', 4 * 1024 ** 3],
  ])('%j → %d bytes', (text, bytes) => {
    expect(parseSize(text)).toEqual({ value: bytes });
  });

  it.each<string | number>(['', 'm', '1.5m', 1.5, '-1', -1, '1 m', '1mb', '1t', '1kk', '99999999999g'])('%j is invalid', (text) => {
    expect(parseSize(text)).toEqual({ error: `invalid size "${text}"` });
  });
});

describe('parseInteger (ngx_atoi)', () => {
  it.each<[string | number, number]>([
    ['0', 0],
    ['32', 32],
    [32, 32],
    ['007', 7],
  ])('%j → %d', (text, value) => {
    expect(parseInteger(text)).toEqual({ value });
  });

  it.each<string | number>(['', '-1', -1, '+1', '1.0', 1.5, 'x', '1x', '99999999999999999999'])('%j is invalid', (text) => {
    expect(parseInteger(text)).toEqual({ error: `invalid number "${text}"` });
  });
});
