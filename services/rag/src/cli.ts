// The `rag-assistant` bin (spec §2.1, §3.11). The compile cache is switched on before anything else loads, so
// repeated runs skip recompiling commander and the service modules; the program lives in cli/program.ts and each
// command group in its own file under cli/.
import { enableCompileCache } from 'node:module';

enableCompileCache();
await import('./cli/program.js');
