#!/usr/bin/env node
// Validates the Terraform module in infra/ with Terraform itself:
//   terraform -chdir=infra init -backend=false && terraform -chdir=infra validate
//
// `init` downloads the pinned providers from the Terraform registry (-backend=false: no state
// bucket is needed to validate). The script exits non-zero whenever it could not validate: no
// terraform binary, or a registry it cannot reach. `--allow-offline` (or
// INFRA_VALIDATE_ALLOW_OFFLINE=1) turns exactly those two cases into a printed skip with exit 0,
// for machines without Terraform or network; the offline invariant tests in test/infra/ run
// everywhere. Any other failure (an invalid module, a failing init) always fails.
//
//   TERRAFORM=/path/to/terraform   use another binary (e.g. tofu); default: terraform on PATH
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const terraform = process.env.TERRAFORM || 'terraform';
const allowOffline = process.argv.includes('--allow-offline') || process.env.INFRA_VALIDATE_ALLOW_OFFLINE === '1';
const env = { ...process.env, CHECKPOINT_DISABLE: '1' };

for (const arg of process.argv.slice(2)) {
  if (arg !== '--allow-offline') {
    console.error(`infra:validate: unknown argument ${arg} (only --allow-offline is accepted)`);
    process.exit(2);
  }
}

/** Ends the run when validation cannot happen: a skip with --allow-offline, a failure without. */
function cannotValidate(why) {
  if (allowOffline) {
    console.log(`infra:validate skipped (--allow-offline): ${why}. The module was NOT validated.`);
    process.exit(0);
  }
  console.error(`infra:validate failed: ${why}, so the module could not be validated. Run it where Terraform and the registry are available, or pass --allow-offline to skip.`);
  process.exit(1);
}

const probe = spawnSync(terraform, ['version'], { cwd: root, env, stdio: 'ignore' });
if (probe.error) {
  if (probe.error.code === 'ENOENT') cannotValidate(`no "${terraform}" binary on PATH (set TERRAFORM to use another one)`);
  console.error(`infra:validate: cannot run ${terraform}: ${probe.error.message}`);
  process.exit(1);
}

/** Runs terraform, echoing its output, and returns its exit status and output. */
function run(args) {
  console.log(`$ ${terraform} ${args.join(' ')}`);
  const result = spawnSync(terraform, args, { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error) {
    console.error(`infra:validate: ${result.error.message}`);
    process.exit(1);
  }
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  return { status: result.status ?? 1, output: `${result.stdout}\n${result.stderr}` };
}

const init = run(['-chdir=infra', 'init', '-backend=false', '-input=false', '-no-color']);
if (init.status !== 0) {
  const offline = /could not connect to registry|failed to request discovery document|no such host|dial tcp|network is unreachable|connection refused|i\/o timeout|TLS handshake timeout/i.test(init.output);
  if (offline) cannotValidate('terraform init cannot reach the provider registry from this machine');
  process.exit(init.status);
}

const validate = run(['-chdir=infra', 'validate', '-no-color']);
if (validate.status !== 0) process.exit(validate.status);
console.log('infra:validate: the Terraform module is valid.');
