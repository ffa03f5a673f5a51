/**
 * Entry point of the deployed functions: `action`, `worker` and `notify`. The
 * configuration is read and validated once, when the instance starts.
 */
import { registerFunctions } from './entry/register.js';

registerFunctions(process.env);
