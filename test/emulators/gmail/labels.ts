// Gmail's system labels and the mapping from Takeout's X-Gmail-Labels names to label ids.

import libmime from 'libmime';

export interface SystemLabel {
  id: string;
  messageListVisibility?: 'show' | 'hide';
  labelListVisibility?: 'labelShow' | 'labelShowIfUnread' | 'labelHide';
}

/** System labels in the order Gmail lists them; the name of a system label is its id. */
export const SYSTEM_LABELS: readonly SystemLabel[] = [
  { id: 'CHAT', messageListVisibility: 'hide', labelListVisibility: 'labelHide' },
  { id: 'SENT' },
  { id: 'INBOX' },
  { id: 'IMPORTANT', messageListVisibility: 'hide', labelListVisibility: 'labelHide' },
  { id: 'TRASH', messageListVisibility: 'hide', labelListVisibility: 'labelHide' },
  { id: 'DRAFT', messageListVisibility: 'hide', labelListVisibility: 'labelHide' },
  { id: 'SPAM', messageListVisibility: 'hide', labelListVisibility: 'labelHide' },
  { id: 'CATEGORY_FORUMS' },
  { id: 'CATEGORY_UPDATES' },
  { id: 'CATEGORY_PERSONAL' },
  { id: 'CATEGORY_PROMOTIONS' },
  { id: 'CATEGORY_SOCIAL' },
  { id: 'STARRED' },
  { id: 'UNREAD' },
];

export const SYSTEM_LABEL_IDS: ReadonlySet<string> = new Set(SYSTEM_LABELS.map((l) => l.id));

/** Labels a client may not add or remove with modify/batchModify (Gmail refuses them too). */
export const IMMUTABLE_LABELS: ReadonlySet<string> = new Set(['DRAFT', 'SENT', 'CHAT']);

/** Takeout label names (lower-cased) → system label id; null means "no label" (a state, not a label). */
const TAKEOUT_SYSTEM: Record<string, string | null> = {
  inbox: 'INBOX',
  sent: 'SENT',
  'sent mail': 'SENT',
  spam: 'SPAM',
  trash: 'TRASH',
  bin: 'TRASH',
  important: 'IMPORTANT',
  starred: 'STARRED',
  unread: 'UNREAD',
  opened: null,
  archived: null,
  draft: 'DRAFT',
  drafts: 'DRAFT',
  chat: 'CHAT',
  chats: 'CHAT',
  'category promotions': 'CATEGORY_PROMOTIONS',
  'category social': 'CATEGORY_SOCIAL',
  'category updates': 'CATEGORY_UPDATES',
  'category forums': 'CATEGORY_FORUMS',
  'category personal': 'CATEGORY_PERSONAL',
  'category primary': 'CATEGORY_PERSONAL',
};

export type TakeoutLabel = { kind: 'system'; id: string } | { kind: 'user'; name: string } | { kind: 'none' };

export function mapTakeoutLabel(name: string): TakeoutLabel {
  const key = name.trim().toLowerCase();
  if (key === '') return { kind: 'none' };
  if (key in TAKEOUT_SYSTEM) {
    const id = TAKEOUT_SYSTEM[key];
    return id ? { kind: 'system', id } : { kind: 'none' };
  }
  const upper = name.trim().toUpperCase();
  if (SYSTEM_LABEL_IDS.has(upper)) return { kind: 'system', id: upper };
  return { kind: 'user', name: name.trim() };
}

/**
 * Splits an X-Gmail-Labels value: comma-separated names, each maybe in double quotes (when
 * it holds a comma) and maybe RFC 2047 encoded (non-ASCII names).
 */
export function splitTakeoutLabels(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '"') quoted = !quoted;
    else if (c === '\\' && quoted && i + 1 < value.length) cur += value[++i];
    else if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out
    .map((s) => {
      const t = s.trim();
      try {
        return t.includes('=?') ? libmime.decodeWords(t).trim() : t;
      } catch {
        return t;
      }
    })
    .filter((s) => s !== '');
}

/** Gmail's search form of a label name: lower case, runs of spaces, "/", "-", "_" as "-". */
export function normalizeLabelName(name: string): string {
  return name.trim().toLowerCase().replace(/[\s/_-]+/g, '-');
}
