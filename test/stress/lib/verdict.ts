import type { FaultRunReport } from './fault-run.js';

/**
 * What is wrong with a fault run, in words (empty when nothing is): the script prints
 * these, and the test suite expects none.
 */
export function problemsOf(report: FaultRunReport): string[] {
  const problems: string[] = [];
  if (!report.proxyAlive) problems.push(`the proxy died: ${report.proxyOutput.join('\n')}`);
  if (report.outcomes.violation > 0) {
    problems.push(`${report.outcomes.violation} responses were neither complete and correct nor visibly failed:\n  ${report.violations.join('\n  ')}`);
  }
  const { before, after, leftOver } = report.descriptors;
  if (after > before) problems.push(`the proxy holds ${after} descriptors, ${before} before the load: ${leftOver.join(', ')}`);
  if (!report.options.kills) {
    // Without kills every server failure would be a client abort counted against a server.
    const counted = Object.values(report.serverFailures).reduce((sum, n) => sum + n, 0);
    if (counted > 0) problems.push(`failures were counted against servers with no server fault: ${JSON.stringify(report.serverFailures)}`);
    if (Object.keys(report.errorLines).length > 0) problems.push(`error-level log lines with no server fault: ${JSON.stringify(report.errorLines)}`);
  }
  if (report.options.abortShare > 0 && (report.accessStatuses['499'] ?? 0) === 0) problems.push('clients went away, and no request was logged as 499');
  return problems;
}
