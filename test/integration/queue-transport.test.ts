/**
 * The connector's queue (functions/src/queue/tasks.ts) on both transports of the Cloud Tasks
 * client against the Cloud Tasks emulator: gRPC, which production uses, and REST. Each
 * failure Cloud Tasks can answer is read the same way on both.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudTasksClient } from '@google-cloud/tasks';
import { loadConfig } from '../../functions/src/config.js';
import { createTasksClient, type TasksTransport } from '../../functions/src/queue/client.js';
import { QueueError, createTaskQueue, type TaskQueue } from '../../functions/src/queue/tasks.js';
import { startCloudTasksEmulator, type CloudTasksEmulator } from '../emulators/cloud-tasks/index.js';

const PROJECT = 'queue-transport';
const LOCATION = 'us-central1';

for (const transport of ['grpc', 'rest'] as TasksTransport[]) {
  describe(`the fetch queue over ${transport}`, () => {
    let emulator: CloudTasksEmulator;
    let client: CloudTasksClient;
    let queue: TaskQueue;

    before(async () => {
      emulator = await startCloudTasksEmulator();
      client = createTasksClient({ emulatorHost: transport === 'grpc' ? emulator.grpcHost : emulator.host, transport });
      const config = loadConfig({
        GCLOUD_PROJECT: PROJECT,
        CONNECTOR_CONFIG: JSON.stringify({ tasks: { T: { users: ['a@example.com'] } } }),
        TASKS_LOCATION: LOCATION,
        TASKS_QUEUE: 'fetch',
        // Nothing listens here: no task is ever delivered, so the queue's contents stay as created.
        WORKER_URL: 'http://127.0.0.1:9/',
        TASKS_INVOKER_SERVICE_ACCOUNT: `invoker@${PROJECT}.iam.gserviceaccount.com`,
      });
      await client.createQueue({
        parent: client.locationPath(PROJECT, LOCATION),
        queue: { name: client.queuePath(PROJECT, LOCATION, 'fetch') },
      });
      queue = createTaskQueue(client, config);
      await queue.pause();
    });

    after(async () => {
      await client.close();
      await emulator.close();
    });

    test('a task name is created once; again it is ALREADY_EXISTS, read as "exists"', async () => {
      assert.equal(await queue.enqueue('once', { token: 'once' }), 'created');
      assert.equal(await queue.enqueue('once', { token: 'once' }), 'exists');
      assert.equal(await queue.exists('once'), true);
    });

    test('a missing task is NOT_FOUND, read as false by exists and remove', async () => {
      assert.equal(await queue.exists('never-created'), false);
      assert.equal(await queue.remove('never-created'), false);
      assert.equal(await queue.enqueue('removed', { token: 'removed' }), 'created');
      assert.equal(await queue.remove('removed'), true);
      assert.equal(await queue.exists('removed'), false);
      // A removed name stays taken, as on Google.
      assert.equal(await queue.enqueue('removed', { token: 'removed' }), 'exists');
    });

    test('INVALID_ARGUMENT fails at once with a QueueError of kind "invalid"', async () => {
      emulator.injectFault('CreateTask', 'INVALID_ARGUMENT', 1);
      await assert.rejects(queue.enqueue('refused', { token: 'refused' }), (e: unknown) => {
        assert.ok(e instanceof QueueError);
        assert.equal(e.kind, 'invalid');
        assert.match(e.message, /^Cloud Tasks createTask refused: refused as invalid: /);
        return true;
      });
      assert.equal(await queue.exists('refused'), false);
      // The refusal was not retried: the next creation of that name goes through.
      assert.equal(await queue.enqueue('refused', { token: 'refused' }), 'created');
    });

    test('UNAVAILABLE is retried: two refusals, then the task is created', async () => {
      emulator.injectFault('CreateTask', 'UNAVAILABLE', 2);
      assert.equal(await queue.enqueue('later', { token: 'later' }), 'created');
      assert.equal(await queue.exists('later'), true);
    });

    test('a creation that took effect, then UNAVAILABLE for every retry: reported as failed, and the task exists', async () => {
      emulator.injectFaultAfter('CreateTask', 1, 2);
      await assert.rejects(queue.enqueue('lost-answer', { token: 'lost-answer' }), (e: unknown) => e instanceof QueueError && e.kind === 'unavailable');
      assert.equal(await queue.exists('lost-answer'), true);
    });

    test('UNAVAILABLE three times fails with a QueueError of kind "unavailable"', async () => {
      emulator.injectFault('GetTask', 'UNAVAILABLE', 3);
      await assert.rejects(queue.exists('later'), (e: unknown) => {
        assert.ok(e instanceof QueueError);
        assert.equal(e.kind, 'unavailable');
        return true;
      });
      assert.equal(await queue.exists('later'), true);
    });

    test('a paused queue still accepts tasks, and says it is paused', async () => {
      assert.equal(await queue.isPaused(), true);
      assert.equal(await queue.enqueue('while-paused', { token: 'p' }, { delaySeconds: 5 }), 'created');
      await queue.resume();
      assert.equal(await queue.isPaused(), false);
      await queue.pause();
    });
  });
}
