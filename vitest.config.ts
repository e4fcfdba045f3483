import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests spawn real proxies and app servers; give them room on a busy 2-core box.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
