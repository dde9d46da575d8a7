import { Button, Group, Modal } from "@mantine/core";

import type { AppConfig } from "../api/config";
import { useAppDispatch } from "../app/hooks";
import { signOut } from "./session";
import { SignedOutPanel } from "./SignedOut";

/**
 * Over the page the user was on when the server refused the token (401) or it ran out: sign
 * in again without losing what is on the page (a half-filled form stays as it is).
 */
export default function SessionEndedDialog({ config }: { config: AppConfig }) {
  const dispatch = useAppDispatch();
  return (
    <Modal
      opened
      onClose={() => undefined}
      withCloseButton={false}
      closeOnEscape={false}
      closeOnClickOutside={false}
      title="Sign in again"
      size="lg"
      centered
    >
      <SignedOutPanel config={config} overPage />
      <Group justify="flex-end" mt="md">
        <Button
          variant="subtle"
          color="gray"
          onClick={() => {
            void signOut(config, dispatch);
          }}
        >
          Sign out
        </Button>
      </Group>
    </Modal>
  );
}
