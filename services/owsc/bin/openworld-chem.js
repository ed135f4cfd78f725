#!/usr/bin/env node
// The embedded database's memory is given back to the system only with a fixed trim threshold (kernel memory.ts).
import { useFixedMallocTrim } from '@quintet/kernel/memory';

useFixedMallocTrim();
await import('../dist/cli.js');
