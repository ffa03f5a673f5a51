/**
 * Identifiers that an action names (`Identifiers` or `IdentifiersXML`), shared by the fetch actions
 * that take them (Collect, Update, Delete, Hold, ReleaseHold, Insert's mailbox check): read and
 * checked against the configured tasks, kept on the action by task and mailbox, and read back by
 * each unit.
 */
import { decodeIdentifier, IdentifierError, parseIdentifierList, parseIdentifiersXml } from '../../aci/identifiers.js';
import { badParameter, missingParameter } from '../../aci/errors.js';
import type { AciParams } from '../../aci/request.js';
import type { Config } from '../../config.js';
import type { FetchParams, UnitContext } from '../spec.js';

/** The most identifiers one action may name (they are kept on the action). */
export const MAX_NAMED_IDENTIFIERS = 1000;

/** The identifiers an action names, by task and mailbox (kept as sent, so results echo them). */
export type Named = Record<string, Record<string, string[]>>;

/** Whether `address` is one of the task's mailboxes: one of its users, or of its domain. */
export function belongsTo(task: Config['connector']['tasks'][string], address: string): boolean {
  if (task.users?.length) return task.users.some((u) => u.toLowerCase() === address);
  return task.domain !== undefined && address.endsWith(`@${task.domain.toLowerCase()}`);
}

/**
 * Reads `Identifiers` or `IdentifiersXML`: each must be of a configured task and one of its
 * mailboxes. `metadata`, when given, receives each identifier's `<metadata>` (IdentifiersXML).
 */
export function parseNamed(p: AciParams, config: Config, metadata?: Map<string, Record<string, string>>): Named | undefined {
  const list = p.get('Identifiers');
  const xml = p.get('IdentifiersXML');
  if (list !== undefined && xml !== undefined) throw badParameter('IdentifiersXML', xml, 'left out when Identifiers is given');
  if (list === undefined && xml === undefined) return undefined;
  const param = list !== undefined ? 'Identifiers' : 'IdentifiersXML';
  let ids: string[];
  try {
    const entries = list !== undefined ? parseIdentifierList(list).map((identifier) => ({ identifier, metadata: {} })) : parseIdentifiersXml(xml ?? '');
    for (const e of entries) metadata?.set(e.identifier, e.metadata);
    ids = entries.map((e) => e.identifier);
  } catch (e) {
    if (e instanceof IdentifierError) throw badParameter(param, list ?? xml ?? '', `identifiers as FetchAction=Identifiers lists them: ${e.message}`);
    throw e;
  }
  if (ids.length === 0) throw missingParameter(param, 'at least one identifier');
  if (ids.length > MAX_NAMED_IDENTIFIERS) throw badParameter(param, `${ids.length} identifiers`, `at most ${MAX_NAMED_IDENTIFIERS} identifiers; send several requests`);
  const tasks = config.connector.tasks;
  const named: Named = {};
  for (const id of ids) {
    let d;
    try {
      d = decodeIdentifier(id);
    } catch (e) {
      if (e instanceof IdentifierError) throw badParameter(param, id, `an identifier as FetchAction=Identifiers lists them: ${e.message}`);
      throw e;
    }
    const task = Object.keys(tasks).find((t) => t.toLowerCase() === d.task.toLowerCase());
    if (task === undefined) throw badParameter(param, id, `an identifier of a configured task (${Object.keys(tasks).join(', ')}), not of task ${d.task}`);
    if (!belongsTo(tasks[task] as Config['connector']['tasks'][string], d.address)) {
      throw badParameter(param, id, `an identifier of one of task ${task}'s mailboxes, not of ${d.address}`);
    }
    const mailboxes = (named[task] ??= {});
    const listed = (mailboxes[d.address] ??= []);
    if (!listed.includes(id)) listed.push(id);
  }
  return named;
}

/** The mailboxes an action's identifiers name, by task; undefined when it was given task sections. */
export function namedMailboxes(params: FetchParams): Record<string, string[]> | undefined {
  const raw = params['identifiers'];
  if (typeof raw !== 'string') return undefined;
  const named = JSON.parse(raw) as Named;
  return Object.fromEntries(Object.entries(named).map(([t, m]) => [t, Object.keys(m).sort()]));
}

/** The identifiers the action names in this unit's mailbox; undefined when it was given task sections. */
export function namedOf(ctx: UnitContext): string[] | undefined {
  const raw = ctx.params['identifiers'];
  if (typeof raw !== 'string') return undefined;
  return (JSON.parse(raw) as Named)[ctx.task]?.[ctx.user] ?? [];
}
