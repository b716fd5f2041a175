import { describe, expect, it } from 'vitest';
import { describeLocation, locationLabel } from './locations';

describe('locations', () => {
  it('names every kind', () => {
    expect(locationLabel('appData')).toBe("Glimpse's model folder");
    expect(locationLabel('huggingFaceCache')).toBe('Hugging Face cache');
    expect(locationLabel('userFolder')).toBe('Added folder');
  });

  it('says when a folder does not exist yet', () => {
    expect(describeLocation({ kind: 'appData', path: '/m', exists: false })).toBe(
      "Glimpse's model folder (not created yet)",
    );
    expect(describeLocation({ kind: 'huggingFaceCache', path: '/h', exists: true })).toBe(
      'Hugging Face cache',
    );
  });
});
