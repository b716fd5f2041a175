// Words for the places models are looked for; kept out of components so they can be tested.
import type { LocationKind, SearchLocation } from './ipc';

const LABELS: Record<LocationKind, string> = {
  appData: "Glimpse's model folder",
  huggingFaceCache: 'Hugging Face cache',
  userFolder: 'Added folder',
};

export function locationLabel(kind: LocationKind): string {
  return LABELS[kind];
}

/** One line per location, e.g. "Hugging Face cache (not created yet)". */
export function describeLocation(location: SearchLocation): string {
  const label = locationLabel(location.kind);
  return location.exists ? label : `${label} (not created yet)`;
}
