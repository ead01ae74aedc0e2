#!/usr/bin/env node
// The `switchboard` command. A committed file (not in dist/), so package managers can link it at
// install time, before the TypeScript build has produced dist/.
import { exitAfterFlush, main } from '../dist/main.js';

main(process.argv).then(exitAfterFlush);
