/** Where a new explain panel opens (panels/panelColumns.ts), in plain Node. */
import * as assert from 'node:assert/strict';
import { columnForNewPanel } from '../../src/extension/panels/panelColumns';

describe('explain panel columns', () => {
  it('opens the first panel beside the active editor', () => {
    assert.equal(columnForNewPanel([]), undefined);
  });

  it('opens later panels in the column of the explain panel used last, not beside it (a third column)', () => {
    assert.equal(columnForNewPanel([{ column: 2, lastActive: 1 }]), 2);
    assert.equal(columnForNewPanel([{ column: 2, lastActive: 1 }, { column: 3, lastActive: 5 }, { column: 1, lastActive: 4 }]), 3);
  });

  it('ignores panels that are in no column', () => {
    assert.equal(columnForNewPanel([{ column: undefined, lastActive: 9 }, { column: 2, lastActive: 1 }]), 2);
    assert.equal(columnForNewPanel([{ column: undefined, lastActive: 9 }]), undefined);
  });
});
