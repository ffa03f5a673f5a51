import { startFirestoreEmulator } from './test/emulators/firestore.ts';
const f = await startFirestoreEmulator({ port: 28080 });
console.log('up', f.host);
process.on('SIGTERM', async () => { await f.close(); process.exit(0); });
setInterval(() => {}, 1000);
