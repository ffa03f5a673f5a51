/** Attachment object names: any file name a message may carry becomes one safe, distinct segment. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { safeAttachmentName, uniqueName } from '../../functions/src/fetch/shared/attachments.js';

describe('attachment names', () => {
  it('keeps ordinary names and makes the others safe', () => {
    assert.equal(safeAttachmentName('report.pdf', 1), 'report.pdf');
    assert.equal(safeAttachmentName('Résumé ü.txt', 1), 'Résumé ü.txt');
    assert.equal(safeAttachmentName('../../etc/passwd', 1), '_.._etc_passwd');
    assert.equal(safeAttachmentName('a\\b/c', 1), 'a_b_c');
    assert.equal(safeAttachmentName('..', 3), 'attachment-3');
    assert.equal(safeAttachmentName(undefined, 4), 'attachment-4');
    assert.equal(safeAttachmentName('  what?*.doc  ', 1), 'what__.doc');
    assert.equal(safeAttachmentName('line\r\nbreak.txt', 1), 'line__break.txt');
    const long = `${'é'.repeat(300)}.pdf`;
    const cut = safeAttachmentName(long, 1);
    assert.equal(Buffer.byteLength(cut) <= 200, true);
    assert.equal(cut.endsWith('.pdf'), true);
  });

  it('gives repeated names a number, case-insensitively', () => {
    const taken = new Set<string>();
    assert.deepEqual(
      ['a.pdf', 'A.pdf', 'a.pdf', 'b'].map((n) => uniqueName(n, taken)),
      ['a.pdf', 'A (2).pdf', 'a (3).pdf', 'b'],
    );
  });

  it('never yields a name that leaves its folder, is empty, or is over 200 bytes', () => {
    fc.assert(
      fc.property(fc.option(fc.string({ unit: 'binary', maxLength: 400 }), { nil: undefined }), fc.nat(50), (raw, n) => {
        const s = safeAttachmentName(raw, n + 1);
        assert.ok(s.length > 0);
        assert.ok(!/[\u0000-\u001f\u007f/\\]/.test(s), JSON.stringify(s));
        assert.ok(s !== '.' && s !== '..' && !s.startsWith('.'), JSON.stringify(s));
        assert.ok(Buffer.byteLength(s) <= 200, JSON.stringify(s));
      }),
      { numRuns: 2000 },
    );
  });
});
