import { Button, Group, Modal, Stack, Text, Textarea } from "@mantine/core";
import { type ReactNode, useEffect, useState } from "react";

import type { CommentKind } from "../contract/forms";
import { useSessionDraft } from "./draft";

type Rule = (kind: CommentKind, comment: string) => string | null;

/** The contract's rule for comments, loaded with protovalidate when a dialog first opens. */
function useCommentRule(active: boolean): Rule | null {
  const [rule, setRule] = useState<{ check: Rule } | null>(null);
  useEffect(() => {
    if (!active || rule) return;
    let live = true;
    void import("../contract/forms").then((m) => {
      if (live) setRule({ check: m.commentProblem });
    });
    return () => {
      live = false;
    };
  }, [active, rule]);
  return rule?.check ?? null;
}

/**
 * A decision or submission with a comment, checked by the contract's rules as the user
 * types; the comment is a draft in sessionStorage until it is sent.
 */
export function CommentDialog({
  opened,
  onClose,
  title,
  kind,
  draftKey,
  intro,
  label,
  description,
  confirmLabel,
  confirmColor,
  busy,
  error,
  onConfirm,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  kind: CommentKind;
  draftKey: string;
  intro?: ReactNode;
  label: string;
  description?: string;
  confirmLabel: string;
  confirmColor?: string;
  busy: boolean;
  error?: ReactNode;
  /** Resolves true when it went through (the draft is then dropped). */
  onConfirm: (comment: string) => Promise<boolean>;
}) {
  const draft = useSessionDraft(draftKey, "");
  const [touched, setTouched] = useState(false);
  const rule = useCommentRule(opened);
  const problem = rule ? rule(kind, draft.value) : null;
  const shownProblem = touched ? problem : null;
  const required = kind === "reject";

  return (
    <Modal opened={opened} onClose={onClose} title={title} size="lg" centered closeButtonProps={{ "aria-label": "Close" }}>
      <form
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          setTouched(true);
          if (problem || !rule) return;
          void onConfirm(draft.value).then((ok) => {
            if (ok) {
              draft.clear();
              setTouched(false);
            }
          });
        }}
      >
        <Stack gap="md">
          {intro}
          <Textarea
            label={label}
            description={description}
            required={required}
            autosize
            minRows={3}
            maxRows={10}
            value={draft.value}
            onChange={(e) => {
              draft.setValue(e.currentTarget.value);
              setTouched(true);
            }}
            error={shownProblem}
            data-autofocus
          />
          {error}
          <Group justify="flex-end" gap="sm">
            <Button variant="default" onClick={onClose} disabled={busy}>
              Cancel
            </Button>
            <Button type="submit" color={confirmColor} loading={busy} disabled={!rule}>
              {confirmLabel}
            </Button>
          </Group>
          {!rule && opened && (
            <Text size="xs" c="dimmed" role="status">
              Loading the field rules…
            </Text>
          )}
        </Stack>
      </form>
    </Modal>
  );
}
