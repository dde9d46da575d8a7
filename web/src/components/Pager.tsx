import { Button, Group, Text } from "@mantine/core";
import { IconChevronLeft, IconChevronRight } from "@tabler/icons-react";
import { useState } from "react";

/**
 * Paging with the server's page tokens (AIP-158): the tokens of the pages seen so far, so
 * "Previous" goes back without the server's help. A page may hold fewer items than asked
 * and still have a next page. Changing `key` (the query) starts again from the first page.
 */
export function usePageTokens(key: string) {
  const [state, setState] = useState<{ key: string; tokens: string[] }>({ key, tokens: [""] });
  const tokens = state.key === key ? state.tokens : [""];
  const index = tokens.length - 1;
  return {
    pageToken: tokens[index] ?? "",
    pageNumber: index + 1,
    next: (token: string) => {
      setState({ key, tokens: [...tokens, token] });
    },
    previous: () => {
      setState({ key, tokens: tokens.slice(0, Math.max(1, index)) });
    },
  };
}

export function Pager({
  pageNumber,
  nextPageToken,
  onNext,
  onPrevious,
  busy,
  label,
}: {
  pageNumber: number;
  nextPageToken: string | undefined;
  onNext: (token: string) => void;
  onPrevious: () => void;
  busy?: boolean;
  label: string;
}) {
  if (pageNumber === 1 && !nextPageToken) return null;
  return (
    <Group justify="space-between" mt="md" component="nav" aria-label={`${label} pages`}>
      <Button
        variant="default"
        size="xs"
        leftSection={<IconChevronLeft size={14} aria-hidden />}
        disabled={pageNumber === 1 || busy}
        onClick={onPrevious}
      >
        Previous
      </Button>
      <Text size="sm" c="dimmed" aria-live="polite">
        Page {pageNumber}
      </Text>
      <Button
        variant="default"
        size="xs"
        rightSection={<IconChevronRight size={14} aria-hidden />}
        disabled={!nextPageToken || busy}
        onClick={() => {
          if (nextPageToken) onNext(nextPageToken);
        }}
      >
        Next
      </Button>
    </Group>
  );
}
