import { Alert, Button, Group, List, Stack, Text } from "@mantine/core";
import { IconAlertTriangle } from "@tabler/icons-react";

import { type ApiError, describeError, type ErrorContext } from "../api/errors";
import { CopyValue } from "./CopyValue";

/**
 * A failure as a sentence the user understands, the server's own words, and the reason
 * code and request id to copy into a support message.
 */
export function ErrorAlert({
  error,
  context = "load",
  onRetry,
  title,
  listViolations = false,
}: {
  error: ApiError;
  context?: ErrorContext;
  onRetry?: () => void;
  /** Replaces the sentence (the reason and request id are still shown). */
  title?: string;
  /** List the server's field violations here (there are no fields beside which to show them). */
  listViolations?: boolean;
}) {
  const text = describeError(error, context);
  const violations = listViolations ? error.fieldViolations : [];
  return (
    <Alert
      color="red"
      variant="light"
      icon={<IconAlertTriangle aria-hidden />}
      title={title ?? (violations.length ? "The server refused these parameters:" : text.title)}
      role="alert"
      styles={{ title: { whiteSpace: "normal" } }}
    >
      <Stack gap={6}>
        {text.detail && (
          <Text size="sm" style={{ overflowWrap: "anywhere" }}>
            {text.detail}
          </Text>
        )}
        {violations.length > 0 && (
          <List size="sm" spacing={2}>
            {violations.map((v) => (
              <List.Item key={`${v.field}:${v.description}`} style={{ overflowWrap: "anywhere" }}>
                <Text span ff="monospace" size="sm">
                  {v.field}
                </Text>
                : {v.description}
              </List.Item>
            ))}
          </List>
        )}
        {(error.reason || error.requestId || error.httpStatus > 0) && (
          <Group gap="lg" wrap="wrap">
            {error.reason && (
              <Group gap={4} wrap="nowrap">
                <Text size="xs" c="dimmed">
                  Reason
                </Text>
                <CopyValue value={error.reason} label="reason code" size="xs" />
              </Group>
            )}
            {error.httpStatus > 0 && (
              <Text size="xs" c="dimmed">
                HTTP {error.httpStatus}
              </Text>
            )}
            {error.requestId && (
              <Group gap={4} wrap="nowrap" style={{ minWidth: 0 }}>
                <Text size="xs" c="dimmed">
                  Request ID
                </Text>
                <CopyValue value={error.requestId} label="request id" size="xs" />
              </Group>
            )}
          </Group>
        )}
        {onRetry && (
          <Group>
            <Button size="xs" variant="white" color="red" onClick={onRetry}>
              Try again
            </Button>
          </Group>
        )}
      </Stack>
    </Alert>
  );
}
