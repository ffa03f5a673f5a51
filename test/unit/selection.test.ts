/**
 * The selection a mailbox was synchronized with (store/mailboxes.ts): its canonical form, when a
 * run that begins clears the recorded one, and what a finished run records.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FieldValue, Timestamp } from '@google-cloud/firestore';
import { finishedRun, sameSelection, selectionOf, standing, type MailboxState } from '../../functions/src/store/mailboxes.js';

const sel = (labels: string[], query = '', includeSpamTrash = false) => selectionOf({ query, labels, includeSpamTrash });
const NOW = Timestamp.fromMillis(1_800_000_000_000);

describe('selection', () => {
  it('is canonical: labels sorted and each once, so that a reordering is no change', () => {
    assert.deepEqual(sel(['INBOX', 'IMPORTANT', 'INBOX']), { query: '', labels: ['IMPORTANT', 'INBOX'], includeSpamTrash: false });
    assert.equal(sameSelection(sel(['B', 'A']), sel(['A', 'B', 'A'])), true);
    assert.equal(sameSelection(sel(['A']), sel(['A', 'B'])), false);
    assert.equal(sameSelection(sel([]), sel([], 'from:x')), false);
    assert.equal(sameSelection(sel([]), sel([], '', true)), false);
    // Labels are ids, compared as written.
    assert.equal(sameSelection(sel(['Label_1']), sel(['label_1'])), false);
    assert.equal(sameSelection(null, sel([])), false, 'an unknown selection equals none');
    assert.equal(sameSelection({ query: '', labels: ['B', 'A'], includeSpamTrash: false }, sel(['A', 'B'])), true, 'a stored one is compared in canonical form too');
  });

  it('a run that begins with another selection clears the recorded one with its epoch; the same one, or a resumed run, writes only its epoch', () => {
    const m: MailboxState = { epoch: 3, syncedEpoch: 3, historyId: '100', selection: sel(['A']) };
    const other = standing(m, null, sel(['A', 'B']));
    assert.equal(other.epoch, 4);
    assert.deepEqual(other.syncedSelection, sel(['A']));
    assert.deepEqual(other.writes, { epoch: 4, selection: FieldValue.delete() });
    assert.deepEqual(standing(m, null, sel(['A', 'A'])).writes, { epoch: 4 });
    assert.deepEqual(standing({ epoch: 4, syncedEpoch: 3, selection: sel(['A']) }, 4, sel(['B'])).writes, {}, 'a resumed run keeps its own');
    assert.deepEqual(standing({ epoch: 3, historyId: '100' }, null, sel([])).syncedSelection, null, 'a state written before selections were recorded');
  });

  it('a finished run records its selection in canonical form, or clears it when unknown; a superseded one writes nothing', () => {
    assert.deepEqual(finishedRun({ syncedEpoch: 2, historyId: '10' }, 't', 3, '20', { query: '', labels: ['B', 'A'], includeSpamTrash: false }, NOW), {
      syncedEpoch: 3,
      syncedAt: NOW,
      syncedBy: 't',
      historyId: '20',
      selection: sel(['A', 'B']),
    });
    assert.deepEqual(finishedRun({ syncedEpoch: 2, selection: sel([]) }, 't', 3, null, null, NOW).selection, FieldValue.delete());
    assert.deepEqual(finishedRun({ syncedEpoch: 5 }, 't', 3, '20', sel([]), NOW), {});
  });
});
