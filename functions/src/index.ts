/**
 * Entry point of the deployed functions: `action` and `worker`. The
 * configuration is read and validated once, when the instance starts.
 */
import { registerFunctions } from './register.js';

registerFunctions(process.env);
