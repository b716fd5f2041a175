// Small display formats shared by the chat components.

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** The image an answer's boxes refer to: the last image of the closest user message before it. */
export function imageFor<T extends { role: string; attachments: { kind: string }[] }>(messages: T[], index: number): T['attachments'][number] | undefined {
  for (let i = index - 1; i >= 0; i--) {
    if (messages[i].role !== 'user') continue;
    return messages[i].attachments.filter((a) => a.kind === 'image').at(-1);
  }
  return undefined;
}
