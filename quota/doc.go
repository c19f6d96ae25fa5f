// Package quota keeps the queue quotas: limits on how many messages and how
// many bytes the queue may hold, globally or per sender, sender domain,
// recipient or recipient domain. A Book is checked when a message is
// admitted, before anything is journaled, and is given back what a message
// held as its recipients become final.
//
// The contract:
//
//   - Admit charges a message only if every quota that applies to it has
//     room, and then charges all of them at once: it is all or nothing, and
//     concurrent admissions never take a quota past its limit. A refusal is
//     an *Exceeded that unwraps (errors.As) to ErrFull, 452 4.3.1, so the
//     caller can answer it as it is and journals nothing. If the caller does
//     not journal an admitted message after all, it calls Drop.
//   - Release gives back what one recipient held; it is called once a
//     recipient is final (delivered, failed, expired, cancelled), and calling
//     it again for the same recipient, or for a message the Book does not
//     know, does nothing.
//   - Charge is Admit without the check, for the start-up rebuild: replaying
//     every journaled envelope through Charge gives exactly the usage of the
//     Book that admitted them and released their final recipients, because
//     what a message charges and when it is released depend only on the
//     envelope and the status of its recipients.
//   - The Book remembers, per message it charged, what it charged, until the
//     message's last charged recipient is released: memory is proportional
//     to the messages in the queue, and usage with nothing queued is empty.
//
// What a message charges, for each quota whose Match accepts it:
//
//   - A message-level quota (Global, Sender, SenderDomain) counts the
//     message once, with its Size in bytes, under its key value (the
//     sender, lower-cased; the sender's domain; "" for Global and for the
//     null reverse-path). Match is called once, with the first recipient of
//     the envelope (Rcpts[0], whatever its status, so that the rebuild sees
//     what admission saw), or nil when there is none. The charge is
//     released when the last recipient of the message that was pending when
//     it was charged is released.
//   - A per-recipient quota (Rcpt, RcptDomain) evaluates Match for each
//     pending recipient and counts each distinct key value of the matching
//     recipients once per message, with the message's Size in bytes: a
//     message to three recipients at one domain counts one message and its
//     size once for that domain. The charge on a key value is released when
//     the last of the message's matching recipients with that key value is
//     released. Addresses are compared lower-cased; a recipient without a
//     domain counts under "" for RcptDomain.
//
// Only recipients that are not final are charged; a message with none, or
// one that no quota applies to, charges nothing and is not remembered. A
// quota has room for a message when its usage plus one message and plus
// the message's size stays within each limit it sets (0 is no limit), so a
// message larger than a byte limit is never admitted under it.
//
// The global ceiling on queued messages and bytes is a Global quota
// without Match.
//
// Unlike Stalwart, whose quotas apply only when a match expression is set
// and true, a Quota without Match always applies.
package quota
