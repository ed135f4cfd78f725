import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  dockerfileStages,
  envAssignments,
  execForm,
  findExecutable,
  makeRunner,
  stageEnvironment,
} from '../src/testing-deploy.js';

const scratch = mkdtempSync(join(tmpdir(), 'kernel-deploy-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const DOCKERFILE = `# syntax=docker/dockerfile:1
FROM node:24-bookworm-slim AS build
WORKDIR /app
# a comment between instructions
RUN npm ci \\
      --workspace a \\
 && npx tsc -b

from node:24-bookworm-slim
ENV A=1 B="two words"
ENV A=3
  healthcheck --interval=30s CMD ["node", "check.js"]
CMD ["node", "serve.js"]
`;

describe('dockerfileStages', () => {
  it('splits at FROM, drops comments, joins continuation lines and upper-cases the instruction', () => {
    expect(dockerfileStages(DOCKERFILE)).toEqual([
      [
        { op: 'FROM', args: 'node:24-bookworm-slim AS build' },
        { op: 'WORKDIR', args: '/app' },
        { op: 'RUN', args: 'npm ci        --workspace a   && npx tsc -b' },
      ],
      [
        { op: 'FROM', args: 'node:24-bookworm-slim' },
        { op: 'ENV', args: 'A=1 B="two words"' },
        { op: 'ENV', args: 'A=3' },
        { op: 'HEALTHCHECK', args: '--interval=30s CMD ["node", "check.js"]' },
        { op: 'CMD', args: '["node", "serve.js"]' },
      ],
    ]);
  });
});

describe('envAssignments and stageEnvironment', () => {
  it('reads quoted and bare values, later ENV instructions winning', () => {
    expect(envAssignments('A=1 B="two words" C=x=y')).toEqual({ A: '1', B: 'two words', C: 'x=y' });
    const runtime = dockerfileStages(DOCKERFILE).at(-1) ?? [];
    expect(stageEnvironment(runtime)).toEqual({ A: '3', B: 'two words' });
  });
});

describe('execForm', () => {
  it('gives the JSON array at the end of the arguments, and refuses the shell form', () => {
    expect(execForm('--interval=30s CMD ["node", "check.js"]')).toEqual(['node', 'check.js']);
    expect(execForm('["/app/storage", "/app/data"]')).toEqual(['/app/storage', '/app/data']);
    expect(() => execForm('node serve.js')).toThrow('not in exec form: node serve.js');
  });
});

describe('findExecutable', () => {
  it('finds a program in the first PATH folder that has it', () => {
    const first = mkdtempSync(join(scratch, 'first-'));
    const second = mkdtempSync(join(scratch, 'second-'));
    for (const dir of [first, second]) writeFileSync(join(dir, 'tool'), '');
    writeFileSync(join(second, 'other'), '');
    const path = ['', first, second].join(delimiter);
    expect(findExecutable('tool', path)).toBe(join(first, 'tool'));
    expect(findExecutable('other', path)).toBe(join(second, 'other'));
    expect(findExecutable('missing', path)).toBeUndefined();
  });
});

const MAKE = findExecutable('make');

describe.skipIf(MAKE === undefined)('makeRunner', () => {
  it('runs make in its folder, and offers a PATH on which nothing but make is installed', () => {
    const project = mkdtempSync(join(scratch, 'project-'));
    writeFileSync(
      join(project, 'Makefile'),
      'hello:\n\t@echo hello from $(notdir $(CURDIR))\n' +
        'tool:\n\t@if command -v docker >/dev/null 2>&1; then echo docker; else echo no docker; fi\n',
    );
    const runner = makeRunner(MAKE ?? 'make', project);
    try {
      const hello = runner.run(['hello']);
      expect(hello.status).toBe(0);
      expect(hello.stdout).toBe(`hello from ${project.split('/').at(-1)}\n`);
      // a stand-in docker on the normal PATH, invisible on the bare one
      const bin = mkdtempSync(join(scratch, 'bin-'));
      writeFileSync(join(bin, 'docker'), '#!/bin/sh\n');
      chmodSync(join(bin, 'docker'), 0o755);
      expect(runner.run(['tool'], { PATH: `${bin}${delimiter}${process.env.PATH}` }).stdout).toBe('docker\n');
      expect(runner.run(['tool'], { PATH: runner.barePath }).stdout).toBe('no docker\n');
      expect(runner.run(['-n', 'hello']).stdout).toContain('echo hello from');
    } finally {
      runner.remove();
    }
    expect(existsSync(runner.barePath)).toBe(false);
  });
});
