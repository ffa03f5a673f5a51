/**
 * The Gmail push invariants of the Terraform module (infra/push.tf): who may publish to the topic,
 * where and how the subscription pushes, dead letters and the rights Pub/Sub needs for them,
 * notify's ingress, identity and invokers, the daily renewal job, and the topic the worker watches
 * with. Read from the parsed module, without a terraform binary.
 */
import { expand, first, functionsByEntryPoint, functionEnv, resources, type Block, type TfModule } from './terraform.js';

const GMAIL_PUBLISHER = 'serviceAccount:gmail-api-push@system.gserviceaccount.com';
const PUBSUB_AGENT = /^serviceAccount:service-\$\{data\.google_project\.this\.number\}@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/;

/** A value as written (references not expanded). */
function raw(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function ref(text: string, type: string): string | undefined {
  return new RegExp(`^\\$\\{${type}\\.([\\w-]+)\\.(?:id|name|email|member)\\}$`).exec(text)?.[1];
}

export function checkPush(m: TfModule): string[] {
  const problems: string[] = [];
  const notify = functionsByEntryPoint(m).get('notify');
  const worker = functionsByEntryPoint(m).get('worker');
  if (!notify) return ['no google_cloudfunctions2_function has entry_point "notify"'];
  const service = first(notify.body['service_config']) ?? {};
  const notifyEnv = functionEnv(m, notify);
  const notifyUrl = expand(m, notifyEnv?.always['NOTIFY_URL']);
  if (!notifyUrl.startsWith('https://')) problems.push(`notify: NOTIFY_URL must be its https URL, got ${notifyUrl || '(unset)'}`);
  if (expand(m, service['ingress_settings']) !== 'ALLOW_INTERNAL_ONLY') problems.push('notify: ingress_settings must be ALLOW_INTERNAL_ONLY (Pub/Sub push of the same project is internal)');
  const account = ref(expand(m, service['service_account_email']), 'google_service_account');
  if (account !== 'notify') problems.push(`notify: must run as google_service_account.notify, got ${expand(m, service['service_account_email'])}`);

  // The push account: the subscription's token, notify's only invoker.
  const pushAccount = ref(expand(m, notifyEnv?.always['PUSH_SERVICE_ACCOUNT']), 'google_service_account');
  if (!pushAccount) problems.push('notify: PUSH_SERVICE_ACCOUNT must name a google_service_account of the module');
  const invokers = resources(m, 'google_cloud_run_service_iam_member').filter((b) => raw(b.body['service']).includes(`google_cloudfunctions2_function.${notify.name}.`));
  const invokerAccounts = invokers.map((b) => ref(expand(m, b.body['member']), 'google_service_account') ?? expand(m, b.body['member']));
  if (invokerAccounts.length !== 1 || invokerAccounts[0] !== pushAccount) problems.push(`notify: its only invoker must be the push account, got ${invokerAccounts.join(', ') || 'none'}`);

  // The topic: Gmail's account publishes, nothing else.
  const workerEnv = worker ? functionEnv(m, worker) : undefined;
  const topic = ref(expand(m, workerEnv?.always['PUSH_TOPIC']), 'google_pubsub_topic');
  if (!topic) problems.push('worker: PUSH_TOPIC must be the id of a google_pubsub_topic of the module');
  const publishers = resources(m, 'google_pubsub_topic_iam_member').filter((b) => ref(raw(b.body['topic']), 'google_pubsub_topic') === topic);
  const publisherMembers = publishers.map((b) => `${expand(m, b.body['role'])} ${expand(m, b.body['member'])}`);
  if (publisherMembers.length !== 1 || publisherMembers[0] !== `roles/pubsub.publisher ${GMAIL_PUBLISHER}`) {
    problems.push(`the push topic: its only grant must be roles/pubsub.publisher to ${GMAIL_PUBLISHER}, got ${publisherMembers.join('; ') || 'none'}`);
  }

  // The subscription: push to notify with the push account's token for notify's URL, dead letters.
  const subs = resources(m, 'google_pubsub_subscription').filter((b) => ref(raw(b.body['topic']), 'google_pubsub_topic') === topic);
  if (subs.length !== 1) return [...problems, `the push topic must have exactly one subscription, got ${subs.length}`];
  const sub = subs[0] as Block;
  const push = first(sub.body['push_config']);
  const oidc = first(push?.['oidc_token']);
  if (expand(m, push?.['push_endpoint']) !== notifyUrl) problems.push(`${sub.address}: push_endpoint must be notify's URL (${notifyUrl}), got ${expand(m, push?.['push_endpoint']) || '(unset)'}`);
  if (ref(expand(m, oidc?.['service_account_email']), 'google_service_account') !== pushAccount) problems.push(`${sub.address}: oidc_token must be the push account's`);
  if (expand(m, oidc?.['audience']) !== notifyUrl) problems.push(`${sub.address}: oidc_token.audience must be NOTIFY_URL (${notifyUrl}), got ${expand(m, oidc?.['audience']) || '(unset)'}`);
  const dead = first(sub.body['dead_letter_policy']);
  const deadTopic = ref(raw(dead?.['dead_letter_topic']), 'google_pubsub_topic');
  if (!deadTopic || deadTopic === topic) problems.push(`${sub.address}: dead_letter_policy must name a dead-letter topic of its own`);
  else {
    const agentPublishes = resources(m, 'google_pubsub_topic_iam_member').some(
      (b) => ref(raw(b.body['topic']), 'google_pubsub_topic') === deadTopic && expand(m, b.body['role']) === 'roles/pubsub.publisher' && PUBSUB_AGENT.test(expand(m, b.body['member'])),
    );
    if (!agentPublishes) problems.push('the Pub/Sub service agent must have roles/pubsub.publisher on the dead-letter topic');
    const agentSubscribes = resources(m, 'google_pubsub_subscription_iam_member').some(
      (b) => ref(raw(b.body['subscription']), 'google_pubsub_subscription') === sub.name && expand(m, b.body['role']) === 'roles/pubsub.subscriber' && PUBSUB_AGENT.test(expand(m, b.body['member'])),
    );
    if (!agentSubscribes) problems.push(`the Pub/Sub service agent must have roles/pubsub.subscriber on ${sub.address}`);
    const kept = resources(m, 'google_pubsub_subscription').some((b) => ref(raw(b.body['topic']), 'google_pubsub_topic') === deadTopic);
    if (!kept) problems.push('the dead-letter topic needs a subscription, or its messages are lost');
  }
  const mints = resources(m, 'google_service_account_iam_member').some(
    (b) => ref(expand(m, b.body['service_account_id']), 'google_service_account') === pushAccount && PUBSUB_AGENT.test(expand(m, b.body['member'])),
  );
  if (!mints) problems.push('the Pub/Sub service agent must be able to mint the push account\'s OIDC tokens');

  // The daily renewal: POST WORKER_URL/watches with the tasks account's token for the worker.
  const workerUrl = expand(m, workerEnv?.always['WORKER_URL']);
  const jobs = resources(m, 'google_cloud_scheduler_job').filter((b) => expand(m, first(b.body['http_target'])?.['uri']) === `${workerUrl}/watches`);
  if (jobs.length !== 1) problems.push(`exactly one scheduler job must POST to the worker's /watches, got ${jobs.length}`);
  else {
    const target = first((jobs[0] as Block).body['http_target']);
    const token = first(target?.['oidc_token']);
    if (expand(m, target?.['http_method']) !== 'POST') problems.push('the renewal job must POST');
    if (expand(m, token?.['audience']) !== workerUrl) problems.push('the renewal job\'s token must be for WORKER_URL');
    if (expand(m, token?.['service_account_email']) !== expand(m, workerEnv?.always['TASKS_INVOKER_SERVICE_ACCOUNT'])) problems.push('the renewal job must call as the tasks invoker account');
  }
  return problems;
}
