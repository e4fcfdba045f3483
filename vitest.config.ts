import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The benchmark (npm run bench) is not a test: never collected, even if a file there
    // were ever named *.test.ts.
    exclude: [...configDefaults.exclude, 'test/bench/**'],
    // Integration tests spawn real proxies and app servers; give them room on a busy 2-core box.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
