/** Push notifications without I/O: the push request's parsing, which tasks an address is in, the watch's labels, the configuration. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConnectorConfig, PUSH_SAFETY_NET } from '../../functions/src/config.js';
import { parsePushBody } from '../../functions/src/push/notification.js';
import { pushTasksOf, watchLabels } from '../../functions/src/push/tasks.js';

const data = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64');
const push = (v: unknown, extra: Record<string, unknown> = {}) => ({ message: { data: data(v), messageId: '42', ...extra }, subscription: 'projects/p/subscriptions/s' });

describe('parsePushBody', () => {
  it("reads Gmail's notification, historyId as a number or a string, the address lower-cased", () => {
    assert.deepEqual(parsePushBody(push({ emailAddress: 'Ann@X.example', historyId: 9876543210 })), { emailAddress: 'ann@x.example', historyId: '9876543210', messageId: '42' });
    assert.deepEqual(parsePushBody(push({ emailAddress: 'a@x.example', historyId: '12345678901234567890' })), { emailAddress: 'a@x.example', historyId: '12345678901234567890', messageId: '42' });
    const urlSafe = { message: { data: data({ emailAddress: 'a@x.example', historyId: 7, pad: '??>>' }).replace(/\+/g, '-').replace(/\//g, '_') } };
    assert.deepEqual(parsePushBody(urlSafe), { emailAddress: 'a@x.example', historyId: '7', messageId: null });
  });

  it('says what is wrong with anything else', () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /JSON object with "message"/],
      [[], /JSON object/],
      [{}, /"message" must be an object/],
      [{ message: 'x' }, /"message" must be an object/],
      [{ message: { data: 3 } }, /message\.data/],
      [{ message: { data: '' } }, /message\.data/],
      [{ message: { data: 'a b' } }, /not base64/],
      [push('not json'), /does not decode to JSON/],
      [push([1]), /JSON object/],
      [push({ historyId: 1 }), /emailAddress/],
      [push({ emailAddress: 'nobody', historyId: 1 }), /emailAddress/],
      [push({ emailAddress: 'a@x.example' }), /historyId/],
      [push({ emailAddress: 'a@x.example', historyId: 0 }), /historyId/],
      [push({ emailAddress: 'a@x.example', historyId: 1.5 }), /historyId/],
      [push({ emailAddress: 'a@x.example', historyId: '012' }), /historyId/],
      [push({ emailAddress: 'a@x.example', historyId: '123456789012345678901' }), /historyId/],
    ];
    for (const [body, why] of cases) {
      const r = parsePushBody(body);
      assert.equal(typeof r, 'string', JSON.stringify(body));
      assert.match(r as string, why);
    }
  });
});

describe('push tasks and watch labels', () => {
  const connector = parseConnectorConfig(
    JSON.stringify({
      tasks: {
        INBOX: { users: ['ann@x.example', 'Bob@x.example'], labels: ['INBOX'], push: true },
        STARS: { users: ['ann@x.example'], labels: ['STARRED', 'INBOX'], push: true },
        ALL: { domain: 'y.example', directoryAdmin: 'admin@y.example', push: true },
        POLLED: { users: ['ann@x.example', 'cy@x.example'] },
      },
    }),
  );

  it('lists the push tasks that include an address, by users or domain', () => {
    assert.deepEqual(pushTasksOf(connector, 'ANN@x.example'), ['INBOX', 'STARS']);
    assert.deepEqual(pushTasksOf(connector, 'bob@x.example'), ['INBOX']);
    assert.deepEqual(pushTasksOf(connector, 'cy@x.example'), []);
    assert.deepEqual(pushTasksOf(connector, 'zed@y.example'), ['ALL']);
    assert.deepEqual(pushTasksOf(connector, 'zed@notY.example'), []);
  });

  it("limits a watch to the union of its tasks' labels, or to none when one task reads every label", () => {
    assert.deepEqual(watchLabels(connector, 'ann@x.example'), ['INBOX', 'STARRED']);
    assert.deepEqual(watchLabels(connector, 'bob@x.example'), ['INBOX']);
    assert.deepEqual(watchLabels(connector, 'zed@y.example'), []);
  });

  it('gives a push task without a schedule the hourly safety net, and keeps one it names', () => {
    assert.deepEqual(connector.tasks['INBOX']?.schedule, PUSH_SAFETY_NET);
    assert.equal(connector.tasks['POLLED']?.schedule, undefined);
    assert.equal(connector.tasks['POLLED']?.push, false);
    const own = parseConnectorConfig(JSON.stringify({ tasks: { T: { users: ['a@x.example'], push: true, schedule: { cron: '*/30 * * * *' } } } }));
    assert.deepEqual(own.tasks['T']?.schedule, { cron: '*/30 * * * *', timeZone: 'Etc/UTC' });
    assert.throws(() => parseConnectorConfig('{"tasks":{"T":{"users":["a@x.example"],"push":"yes"}}}'), (e: Error) => e instanceof ConfigError && /tasks\.T\.push/.test(e.message));
  });

  it('reads PUSH_TOPIC, NOTIFY_URL and PUSH_SERVICE_ACCOUNT, refusing malformed values by name', () => {
    const base = { GCLOUD_PROJECT: 'p', CONNECTOR_CONFIG: '{"tasks":{"T":{"users":["a@x.example"]}}}', WORKER_URL: 'https://w', TASKS_INVOKER_SERVICE_ACCOUNT: 'i@p.iam.gserviceaccount.com' };
    const c = loadConfig({ ...base, PUSH_TOPIC: 'projects/my-project/topics/gmail-push', NOTIFY_URL: 'https://n.example/', PUSH_SERVICE_ACCOUNT: 'push@p.iam.gserviceaccount.com' });
    assert.equal(c.pushTopic, 'projects/my-project/topics/gmail-push');
    assert.equal(c.notifyUrl, 'https://n.example/');
    assert.equal(c.pushServiceAccount, 'push@p.iam.gserviceaccount.com');
    assert.throws(() => loadConfig({ ...base, PUSH_TOPIC: 'gmail-push' }), /PUSH_TOPIC must be a Pub\/Sub topic/);
    assert.throws(() => loadConfig({ ...base, NOTIFY_URL: 'ftp://x' }), /NOTIFY_URL must be an http/);
    assert.throws(() => loadConfig({ ...base, PUSH_SERVICE_ACCOUNT: 'push' }), /PUSH_SERVICE_ACCOUNT must be a service account/);
  });
});
