#!/usr/bin/env node
// The `gmail-connector` bin: runs cli/main.ts through tsx, so no build step is needed.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
