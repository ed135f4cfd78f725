// The `openworld-chem` bin (spec §3.6). The compile cache is switched on before anything else is loaded, so
// repeated runs skip recompiling commander and the domain modules (whole-command wall time is a target, §6);
// the program itself lives in cli/program.ts and each command in its own file under cli/.
import { enableCompileCache } from 'node:module';

enableCompileCache();
await import('./cli/program.js');
