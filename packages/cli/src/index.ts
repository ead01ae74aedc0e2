/**
 * @switchboard/cli — the `switchboard` command (bin). `main(argv)` runs it in process and resolves
 * with the exit code: 0 done, 1 failed, 2 usage or config error.
 */
export { main } from './main.js';
